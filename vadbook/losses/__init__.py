"""Losses: MIL objectives (:mod:`vadbook.losses.mil`) and splatting-based pseudo-label
losses (:mod:`vadbook.losses.splat`)."""
from . import mil, splat
from .mil import check_labels, check_mask, ranking_loss, topk_bce, topk_k, topk_mask, topk_mean
from .splat import *  # noqa: F401,F403

__all__ = ["check_mask", "check_labels", "topk_k", "topk_mask", "topk_mean", "topk_bce",
           "ranking_loss", *splat.__all__]
