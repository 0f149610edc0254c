"""UR-DMU: Dual Memory Units with Uncertainty Regulation (Zhou et al., AAAI 2023).

The backbone that GS-MoE and GlanceVAD build on. Snippet features go through a temporal
convolution and a GL-MHSA transformer (:mod:`vadbook.nn.attention`); the result, the
*task-aware features*, reads two memories (:mod:`vadbook.nn.memory`): an anomaly memory
that should answer only to abnormal snippets and a normal memory that should answer to
normal ones. The memory read-outs, passed through a Gaussian encoder (a learned mean and
variance for normal data: the "uncertainty regulation"), are concatenated with the features
and scored by a small MLP head.

This is our own implementation of the public reference code's behaviour, with masks for
variable lengths. Training splits the batch by ``labels`` (not by position) and pairs the
i-th normal video with the i-th abnormal video for the triplet and distance terms, so the
batch must hold as many normal as abnormal videos.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.mil import check_labels, check_mask, topk_bce, topk_mask
from .attention import GLTransformer
from .memory import MemoryUnit

__all__ = ["URDMUConfig", "URDMU"]

ScoreLoss = Callable[[torch.Tensor, dict], torch.Tensor]


@dataclass
class URDMUConfig:
    """Sizes and loss weights of :class:`URDMU`; the defaults are the paper's (I3D input).

    Loss: ``anomaly + w_memory * (A_loss + panomaly + N_loss + A_Nloss)
    + w_triplet * triplet + w_kl * KL + w_distance * distance``.
    """

    in_dim: int = 1024
    dim: int = 512
    depth: int = 2
    heads: int = 4
    dim_head: int = 128
    mlp_dim: int | None = None  # None: dim
    dropout: float = 0.5
    a_slots: int = 60
    n_slots: int = 60
    head_hidden: int = 128
    triplet_margin: float = 1.0
    distance_margin: float = 100.0
    w_memory: float = 0.1
    w_triplet: float = 0.1
    w_kl: float = 0.001
    w_distance: float = 1e-4

    @classmethod
    def paper(cls, in_dim: int = 1024, **overrides) -> "URDMUConfig":
        """Paper scale: d = 512, 4 heads of 128, 60 + 60 memory slots."""
        return replace(cls(in_dim=in_dim), **overrides)

    @classmethod
    def small(cls, in_dim: int = 1024, **overrides) -> "URDMUConfig":
        """CPU scale for the book's small runs: d = 128, 4 heads of 32."""
        return replace(cls(in_dim=in_dim, dim=128, dim_head=32), **overrides)


def _pool(feat: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
    """Mean of ``feat`` ``[B, T, D]`` over the snippets marked in ``sel`` ``[B, T]`` -> ``[B, D]``."""
    w = sel.to(feat.dtype)
    return (feat * w[..., None]).sum(dim=1) / w.sum(dim=1, keepdim=True)


def _masked_bce(p: torch.Tensor, target: float, mask: torch.Tensor) -> torch.Tensor:
    """BCE of probabilities ``p`` against a constant, averaged over the valid snippets."""
    nll = F.binary_cross_entropy(p, torch.full_like(p, target), reduction="none")
    return (nll * mask).sum() / mask.sum()


class URDMU(nn.Module):
    """UR-DMU with masks. ``model(x, mask)`` scores snippets; ``model(x, mask, labels)`` in
    train mode also returns what :meth:`loss` needs.

    Args:
        config: sizes and loss weights (default :meth:`URDMUConfig.paper`).
    """

    def __init__(self, config: URDMUConfig | None = None):
        super().__init__()
        c = self.config = config or URDMUConfig()
        self.embedding = nn.Sequential(nn.Conv1d(c.in_dim, c.dim, kernel_size=3, padding=1), nn.ReLU())
        self.transformer = GLTransformer(c.dim, c.depth, c.heads, c.dim_head, c.mlp_dim, c.dropout)
        self.amemory = MemoryUnit(c.a_slots, c.dim)
        self.nmemory = MemoryUnit(c.n_slots, c.dim)
        self.encoder_mu = nn.Linear(c.dim, c.dim)
        self.encoder_var = nn.Linear(c.dim, c.dim)
        self.head = nn.Sequential(nn.Linear(2 * c.dim, c.head_hidden), nn.ReLU(),
                                  nn.Linear(c.head_hidden, 1), nn.Sigmoid())

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Task-aware features ``[B, T, dim]``: Conv1d(k=3) + ReLU, then the GL-MHSA transformer.

        Padded snippets are zeroed first so the convolution sees them as its own zero
        padding: a padded video gives the same valid features as the unpadded one.
        """
        h = self.embedding((x * mask[..., None]).transpose(1, 2)).transpose(1, 2)
        return self.transformer(h, mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Score snippets.

        Args:
            x: ``[B, T, in_dim]`` snippet features.
            mask: ``[B, T]`` bool validity mask (None: all valid).
            labels: ``[B]`` video labels; with the module in train mode they select the
                training path (normal memory sampled, triplet / KL / distance computed).

        Returns:
            Dict with ``scores`` ``[B, T]`` in (0, 1), ``features`` ``[B, T, dim]`` (the
            transformer output), ``amem_att`` / ``nmem_att`` ``[B, T]`` (each video's
            temporal attention on the anomaly / normal memory). Training path adds the
            scalars ``triplet``, ``kl`` and ``distance``. In the reference's names, for
            abnormal rows ``amem_att`` is ``A_att`` and ``nmem_att`` is ``N_Aatt``; for
            normal rows they are ``A_Natt`` and ``N_att``.
        """
        c = self.config
        if x.dim() != 3 or x.shape[-1] != c.in_dim:
            raise ValueError(f"URDMU expects x of shape [B, T, {c.in_dim}], got {tuple(x.shape)}")
        mask = check_mask(x, mask, "x")
        h = self.encode(x, mask)
        a_att, a_aug, _ = self.amemory(h)
        n_att, n_aug, _ = self.nmemory(h)
        a_mu, n_mu = self.encoder_mu(a_aug), self.encoder_mu(n_aug)
        out = {"features": h, "amem_att": a_att, "nmem_att": n_att}
        if labels is None or not self.training:
            out["scores"] = self.head(torch.cat([h, a_mu + n_mu], dim=-1)).squeeze(-1)
            return out

        is_abn = self._split(labels, x.shape[0])
        is_nor = ~is_abn
        # Uncertainty regulation: normal videos read the normal memory through a sampled
        # Gaussian, everything else through its mean.
        n_logvar = self.encoder_var(n_aug)
        n_sample = n_mu + torch.randn_like(n_mu) * torch.exp(0.5 * n_logvar)
        n_read = torch.where(is_nor[:, None, None], n_sample, n_mu)
        out["scores"] = self.head(torch.cat([h, a_mu + n_read], dim=-1)).squeeze(-1)

        # Top-k snippets (k = T_valid // 16 + 1) by each memory's attention.
        sel_a = topk_mask(a_att.detach(), mask)  # abnormal rows: A_index
        sel_n = topk_mask(n_att.detach(), mask)  # normal rows: N_index; abnormal rows: P_index
        h_by_a, h_by_n = _pool(h, sel_a), _pool(h, sel_n)
        anchor, positive, negative = h_by_n[is_nor], h_by_n[is_abn], h_by_a[is_abn]
        out["triplet"] = F.triplet_margin_loss(F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1),
                                               F.normalize(negative, dim=-1), margin=c.triplet_margin)

        # KL of the normal Gaussian to N(0, I), as the public code: summed over (valid)
        # snippets, averaged over videos and channels.
        kl_terms = 1 + n_logvar - n_mu.pow(2) - n_logvar.exp()  # [B, T, dim]
        kl_per_video = -0.5 * (kl_terms * mask[..., None]).sum(dim=1)  # [B, dim]
        out["kl"] = kl_per_video[is_nor].mean()

        anchor_new = _pool(n_sample, sel_n)[is_nor]
        negative_new = _pool(a_mu, sel_a)[is_abn]
        out["distance"] = F.relu(c.distance_margin - negative_new.norm(dim=-1) + anchor_new.norm(dim=-1)).mean()
        return out

    @staticmethod
    def _split(labels: torch.Tensor, B: int) -> torch.Tensor:
        is_abn = check_labels(labels, B).bool()
        n_abn = int(is_abn.sum())
        if n_abn == 0 or 2 * n_abn != B:
            raise ValueError(f"URDMU training needs a balanced batch (pairs normal i with abnormal i), "
                             f"got {B - n_abn} normal and {n_abn} abnormal videos")
        return is_abn

    def loss(self, out: dict, batch: dict, score_loss: ScoreLoss | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """UR-DMU's training loss (the public ``train.py``), with masks.

        ``anomaly`` = top-k BCE of the scores (or ``score_loss(scores, batch)``);
        ``A_loss`` = BCE(top-k mean of ``A_att``, 1); ``panomaly`` = BCE(top-k mean of
        ``1 - N_Aatt``, 1) on abnormal videos; ``N_loss`` = BCE(``N_att``, 1) and ``A_Nloss`` =
        BCE(``A_Natt``, 0) over every valid snippet of the normal videos.

        Args:
            out: the training-path output of :meth:`forward` (called with ``labels``).
            batch: dict with ``label`` ``[B]`` and ``mask`` ``[B, T]``.
            score_loss: ``score_loss(scores, batch) -> scalar`` replacing ``anomaly``
                (TGS or glance fine-tuning); the memory terms stay.

        Returns:
            ``(total, parts)``, ``parts`` a dict of detached scalars.
        """
        if "triplet" not in out:
            raise ValueError("URDMU.loss needs the training outputs: call model(x, mask, labels) in train mode")
        c, scores = self.config, out["scores"]
        mask = check_mask(scores, batch.get("mask"))
        is_abn = self._split(batch["label"], scores.shape[0])
        is_nor = ~is_abn
        if score_loss is not None:
            anomaly = score_loss(scores, batch)
        else:
            anomaly = topk_bce(scores, batch["label"], mask)
        a_att, n_att = out["amem_att"], out["nmem_att"]
        m_abn, m_nor = mask[is_abn], mask[is_nor]
        ones = torch.ones(m_abn.shape[0], device=scores.device)
        parts = {
            "anomaly": anomaly,
            "A_loss": topk_bce(a_att[is_abn], ones, m_abn),
            "panomaly": topk_bce(1 - n_att[is_abn], ones, m_abn),
            "N_loss": _masked_bce(n_att[is_nor], 1.0, m_nor),
            "A_Nloss": _masked_bce(a_att[is_nor], 0.0, m_nor),
            "triplet": out["triplet"], "kl": out["kl"], "distance": out["distance"],
        }
        memory = parts["A_loss"] + parts["panomaly"] + parts["N_loss"] + parts["A_Nloss"]
        total = (anomaly + c.w_memory * memory + c.w_triplet * out["triplet"]
                 + c.w_kl * out["kl"] + c.w_distance * out["distance"])
        parts["total"] = total
        return total, {k: v.detach() for k, v in parts.items()}
