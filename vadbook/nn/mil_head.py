"""The MIL baseline of Sultani et al. (CVPR 2018): an MLP that scores each snippet alone.

``Linear(D, 512) - ReLU - Dropout(0.6) - Linear(512, 32) - Dropout(0.6) - Linear(32, 1) - Sigmoid``
per snippet, as in the paper (the 32-unit layer has no activation in the public code).
It sees no temporal context: everything it learns about time comes from the loss.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..losses.mil import check_mask, ranking_loss, topk_bce

__all__ = ["MILHead"]

ScoreLoss = Callable[[torch.Tensor, dict], torch.Tensor]


class MILHead(nn.Module):
    """Sultani's snippet scorer with a choice of MIL objective.

    Args:
        in_dim: feature size ``D``.
        hidden: first hidden width (512).
        bottleneck: second hidden width (32).
        dropout: dropout after each hidden layer (0.6).
        objective: ``"topk"`` for the top-k BCE of :func:`vadbook.losses.topk_bce` (the
            default of every later method) or ``"ranking"`` for Sultani's ranking loss
            :func:`vadbook.losses.ranking_loss`. Sultani's ``||W||`` term is weight decay,
            set in the optimiser.

    Attributes:
        kind: the objective, ``"topk"`` or ``"ranking"``.
    """

    def __init__(self, in_dim: int, hidden: int = 512, bottleneck: int = 32,
                 dropout: float = 0.6, objective: str = "topk"):
        super().__init__()
        if objective not in ("topk", "ranking"):
            raise ValueError(f"objective must be 'topk' or 'ranking', got {objective!r}")
        self.in_dim, self.kind = in_dim, objective
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, bottleneck), nn.Dropout(dropout),
            nn.Linear(bottleneck, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Score every snippet.

        Args:
            x: ``[B, T, D]`` features.
            mask: ``[B, T]`` bool validity mask; snippets are scored independently, so it
                is only checked (scores at padded snippets are finite and meaningless).
            labels: unused; accepted so a trainer can call every model as
                ``model(x, mask, labels)`` (UR-DMU needs them in training).

        Returns:
            ``{"scores": [B, T] in (0, 1), "logits": [B, T]}``.
        """
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"MILHead expects x of shape [B, T, {self.in_dim}], got {tuple(x.shape)}")
        check_mask(x, mask, "x")
        logits = self.net(x).squeeze(-1)
        return {"scores": torch.sigmoid(logits), "logits": logits}

    def loss(self, out: dict, batch: dict, score_loss: ScoreLoss | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss.

        Args:
            out: the output of :meth:`forward`.
            batch: a training batch with ``label`` ``[B]`` and ``mask`` ``[B, T]``.
            score_loss: ``score_loss(scores, batch) -> scalar`` replacing the MIL objective
                (e.g. a TGS or glance loss).

        Returns:
            ``(total, parts)`` with ``parts`` a dict of detached scalars.
        """
        scores = out["scores"]
        if score_loss is not None:
            total = score_loss(scores, batch)
            name = "score_loss"
        elif self.kind == "ranking":
            total = ranking_loss(scores, batch["label"], batch.get("mask"))
            name = "ranking"
        else:
            total = topk_bce(scores, batch["label"], batch.get("mask"))
            name = "topk_bce"
        return total, {name: total.detach(), "total": total.detach()}
