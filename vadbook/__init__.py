"""vadbook: the components of the book *Weakly-Supervised Video Anomaly Detection*.

Every chapter does ``import vadbook``; the package holds all code that is reused or longer
than a few lines, so the book text and the library cannot drift apart.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__version__ = "0.1.0"

# NumPy 2 prints scalars as ``np.float64(0.87)``; chapters glue measured numbers into the text
# (myst-nb formats their plain-text repr), so keep the plain ``0.87`` repr of NumPy 1.
np.set_printoptions(legacy="1.25")

__all__ = ["device", "seed_everything", "__version__"]


def device(prefer: str | None = None) -> torch.device:
    """The device every chapter uses: ``$VADBOOK_DEVICE`` if set, else CUDA when present, else CPU."""
    name = prefer or os.environ.get("VADBOOK_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch Generator seeded the same.

    CPU training of the book's small models is then bit-reproducible within one process;
    across processes, compare metrics with tolerances (BLAS thread scheduling may differ).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g
