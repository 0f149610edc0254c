"""Calibration constants of the synthetic benchmark, taken from the real datasets.

Every number here comes from ``reference/dataset-stats.md`` (computed from the public UCF-Crime
and XD-Violence split lists, temporal annotations and GlanceVAD glance files), except the
``salience`` column, which is the synthetic benchmark's own difficulty knob: how far a class's
feature signature lies from normal activity (explosions are obvious, shoplifting is not), in
the order of the per-class AUCs that GS-MoE reports (its Figure 5).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClassSpec:
    """One anomaly class: name, video counts, event duration and salience.

    Attributes:
        name: class name.
        train, test: number of abnormal videos of this class in the real split.
        dur_median: median event duration in frames.
        dur_sigma: log-normal sigma of the duration, from the inter-quartile range
            (``(ln p75 - ln p25) / 1.349``), 0.6 where the statistics give no range.
        salience: signature strength relative to normal activity, in (0, 1].
        normal_like: fraction of the signature shared with harmless normal activity.
    """

    name: str
    train: int
    test: int
    dur_median: float
    dur_sigma: float
    salience: float
    normal_like: float


def _iqr_sigma(p25: float, p75: float) -> float:
    import math
    return (math.log(p75) - math.log(p25)) / 1.349


@dataclass(frozen=True)
class Preset:
    """Statistics of one real dataset and how its videos look."""

    name: str
    classes: tuple[ClassSpec, ...]
    n_train: int            # real split sizes (paper scale)
    n_train_normal: int
    n_test: int
    n_test_normal: int
    fps: float
    len_mu_abn: float       # ln(snippets), log-normal video length
    len_sigma_abn: float
    len_mu_norm: float
    len_sigma_norm: float
    train_events: dict[int, int]   # events per abnormal training video (glance counts)
    test_events: dict[int, int]    # events per abnormal test video (annotation counts)
    labels_per_video: dict[int, int] = field(default_factory=lambda: {1: 1})
    moving_camera: bool = False
    multi_label: bool = False


_LN16 = 2.7726

UCF = Preset(
    name="ucf",
    classes=(
        ClassSpec("Abuse", 48, 2, 80, 0.6, 0.45, 0.6),
        ClassSpec("Arrest", 45, 5, 1665, _iqr_sigma(630, 2100), 0.40, 0.6),
        ClassSpec("Arson", 41, 9, 422, _iqr_sigma(308, 744), 0.80, 0.2),
        ClassSpec("Assault", 47, 3, 628, _iqr_sigma(526, 2230), 0.55, 0.5),
        ClassSpec("Burglary", 87, 13, 500, _iqr_sigma(300, 1620), 0.45, 0.6),
        ClassSpec("Explosion", 29, 21, 200, _iqr_sigma(142, 442), 1.00, 0.0),
        ClassSpec("Fighting", 45, 5, 910, _iqr_sigma(340, 1283), 0.60, 0.5),
        ClassSpec("RoadAccidents", 127, 23, 90, _iqr_sigma(60, 130), 0.85, 0.2),
        ClassSpec("Robbery", 145, 5, 480, _iqr_sigma(480, 915), 0.50, 0.5),
        ClassSpec("Shooting", 27, 23, 270, _iqr_sigma(160, 405), 0.60, 0.3),
        ClassSpec("Shoplifting", 29, 21, 170, _iqr_sigma(120, 270), 0.25, 0.8),
        ClassSpec("Stealing", 95, 5, 660, _iqr_sigma(255, 840), 0.35, 0.7),
        ClassSpec("Vandalism", 45, 5, 195, _iqr_sigma(82, 330), 0.50, 0.5),
    ),
    n_train=1610, n_train_normal=800, n_test=290, n_test_normal=150, fps=30.0,
    # ln(frames) 7.66 / 0.92 (abnormal), 7.51 / 1.08 (normal); minus ln 16 for snippets
    len_mu_abn=7.66 - _LN16, len_sigma_abn=0.92, len_mu_norm=7.51 - _LN16, len_sigma_norm=1.08,
    train_events={1: 165, 2: 282, 3: 206, 4: 118, 5: 29, 6: 8, 7: 2},
    test_events={1: 124, 2: 16},
)

XD = Preset(
    name="xd",
    classes=(
        ClassSpec("Fighting", 481, 126, 280, 0.9, 0.55, 0.5),
        ClassSpec("Shooting", 442, 104, 72, 0.8, 0.60, 0.3),
        ClassSpec("Riot", 384, 101, 1090, 0.9, 0.70, 0.3),
        ClassSpec("Abuse", 50, 11, 310, 0.9, 0.40, 0.6),
        ClassSpec("CarAccident", 444, 106, 86, 0.7, 0.75, 0.2),
        ClassSpec("Explosion", 382, 103, 156, 0.8, 0.90, 0.1),
    ),
    n_train=3954, n_train_normal=2049, n_test=800, n_test_normal=300, fps=24.0,
    len_mu_abn=4.56, len_sigma_abn=0.83, len_mu_norm=5.30, len_sigma_norm=0.70,
    train_events={1: 620, 2: 567, 3: 413, 4: 243, 5: 59, 6: 3},
    test_events={1: 240, 2: 105, 3: 59, 4: 26, 5: 15, 6: 20, 8: 20, 12: 15},
    labels_per_video={1: 1662, 2: 208, 3: 35},
    moving_camera=True, multi_label=True,
)

PRESETS = {"ucf": UCF, "xd": XD}


@dataclass(frozen=True)
class Scale:
    """Sizes of one scale. ``None`` counts mean the real split sizes."""

    name: str
    n_train: int | None
    n_val: int
    n_test: int | None
    dim: int
    max_len: int          # videos are clipped to this many snippets
    min_per_class: int = 3


SCALES = {
    "small": Scale("small", n_train=240, n_val=60, n_test=120, dim=128, max_len=480),
    "paper": Scale("paper", n_train=None, n_val=160, n_test=None, dim=1024, max_len=4096),
}
