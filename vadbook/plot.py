"""Figures used across chapters: score curves over shaded ground truth, training curves."""
from __future__ import annotations

import numpy as np

from .data.video import Video

EVENT_COLOR = "#f4a6a6"
GLANCE_COLOR = "#7b2cbf"


def setup(context: str = "notebook") -> None:
    """The book's figure style (seaborn, colour-blind palette, readable on slides)."""
    import matplotlib as mpl
    import seaborn as sns
    sns.set_theme(context=context, style="whitegrid", palette="colorblind")
    mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "axes.titlesize": "medium"})


def shade_events(ax, video: Video, label: str | None = "ground truth", color: str = EVENT_COLOR) -> None:
    """Shade the video's annotated events (snippet units, end exclusive) on ``ax``."""
    for i, (s, e, _) in enumerate(video.events):
        ax.axvspan(s - 0.5, e - 0.5, color=color, alpha=0.5, lw=0, label=label if i == 0 else None)


def plot_scores(ax, video: Video, curves: dict[str, np.ndarray], glances: bool = False,
                title: str | None = None, ylim=(-0.02, 1.02)) -> None:
    """Score curves ``{label: [T] scores}`` of one video over its shaded events.

    Args:
        ax: a matplotlib axis.
        video: the video (its events are shaded, its glances drawn as ticks if ``glances``).
        curves: named score arrays of length ``video.T``.
    """
    shade_events(ax, video)
    t = np.arange(video.T)
    for name, y in curves.items():
        y = np.asarray(y)
        if y.shape != (video.T,):
            raise ValueError(f"curve {name!r} has shape {y.shape}, video {video.name!r} has T={video.T}")
        ax.plot(t, y, lw=1.6, label=name)
    if glances and video.glances is not None:
        for i, g in enumerate(video.glances):
            ax.axvline(g, color=GLANCE_COLOR, ls="--", lw=1, label="glance" if i == 0 else None)
    ax.set_xlim(-0.5, video.T - 0.5)
    ax.set_ylim(*ylim)
    ax.set_xlabel("snippet (16 frames)")
    ax.set_ylabel("anomaly score")
    ax.set_title(title or f"{video.name} ({'+'.join(video.classes) or 'Normal'})")
    ax.legend(loc="upper right", fontsize="small", framealpha=0.9)


def plot_history(ax, results: dict, key: str = "val_AUC") -> None:
    """Validation curves of several :class:`~vadbook.train.FitResult` s, best step marked."""
    for name, res in results.items():
        steps, values = res.curve(key)
        line, = ax.plot(steps, values, marker="o", ms=3, label=name)
        ax.axvline(res.best_step, color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("training step")
    ax.set_ylabel(key.replace("_", " "))
    ax.legend(fontsize="small")


def mean_std(values) -> str:
    """``"0.871 ± 0.012"`` of a list of numbers (population std, as the tables report)."""
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std():.3f}"
