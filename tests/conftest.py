"""pytest glue for vadbook's tests: determinism, seeding, and a CPU/CUDA `device` fixture.

Usage in a test file::

    def test_shapes(device):                 # runs on "cpu", and on "cuda" when available
        x = torch.randn(2, 8, 4, device=device)

    @pytest.mark.cuda
    def test_only_on_gpu(): ...              # skipped without CUDA

Every test starts from ``vadbook.seed_everything(0)``.
"""
from __future__ import annotations

import os

# Before torch is imported anywhere: reproducible BLAS across processes. Notebook kernels that
# nbval starts later inherit these too (PYTHONHASHSEED only affects those new processes).
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")
os.environ.setdefault("PYTHONHASHSEED", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

import vadbook  # noqa: E402

HAS_CUDA = torch.cuda.is_available()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped when none is present)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="CUDA is not available")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Seed Python, NumPy and torch before every test."""
    vadbook.seed_everything(0)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each test that takes ``device`` runs on the CPU, and again on CUDA when available."""
    return torch.device(request.param)
