"""GS-MoE stage 3: the gate that fuses the experts' scores with the task-aware features.

GS-MoE Sec. 3.2, "Stage 3", in three parts; the reading chosen here (sizes are ours):

(a) *Score refinement*: the ``E`` expert scores of a snippet are concatenated and projected
    to ``dim`` channels, ``a_t = W_s [s_t^1, ..., s_t^E] + b_s``.
(b) *Bi-directional cross-attention* between the projected expert logits ``a`` and the
    task-aware features ``f`` (projected to ``dim``): each stream queries the other,
    ``a <- a + CA(LN(a), LN(f))`` and ``f <- f + CA(LN(f), LN(a))`` (4 heads, attention over
    the snippets of the same video), and the two are fused by ``W_f [a, f]``.
(c) *Final prediction*: a transformer block (pre-LN self-attention, 4 heads, and a GELU
    feed-forward), then a four-layer MLP with GELU, ``dim -> dim -> dim/2 -> dim/4 -> 1``,
    and a sigmoid.

The expert inputs are *scores* in (0, 1), so masking an expert (GS-MoE Table 4) means
feeding 0 for it, the value it gives normal snippets. ``use_features=False`` (GS-MoE
Table 5, "w/o TA features") drops ``f`` and the cross-attention: the block then sees ``a``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..losses.mil import check_mask

__all__ = ["GateConfig", "Gate", "CrossAttention"]


@dataclass
class GateConfig:
    """Sizes of the gate; ``dim`` must be divisible by ``heads`` and by 4."""

    n_experts: int = 13
    feat_dim: int = 512          # task-aware feature width (UR-DMU's dim)
    dim: int = 128               # "a higher-dimensional space" than the E scores
    heads: int = 4
    dropout: float = 0.1         # on residual branches (not on attention weights)
    use_features: bool = True


class CrossAttention(nn.Module):
    """Pre-LN residual multi-head attention ``q + Drop(MHA(LN(q), LN(kv), LN(kv)))`` over valid keys.

    With ``cross=False`` it is self-attention, ``q + MHA(LN(q), LN(q), LN(q))``.
    """

    def __init__(self, dim: int, heads: int, dropout: float, cross: bool = True):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim) if cross else None
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: Tensor, kv: Tensor | None, mask: Tensor) -> Tensor:
        """``q``, ``kv`` ``[B, T, dim]`` (``kv`` None for self-attention); ``mask`` ``[B, T]``
        bool (valid keys) -> ``[B, T, dim]``."""
        q_n = self.norm_q(q)
        kv_n = q_n if self.norm_kv is None else self.norm_kv(kv)
        out = self.attn(q_n, kv_n, kv_n, key_padding_mask=~mask, need_weights=False)[0]
        return q + self.drop(out)


class Gate(nn.Module):
    """The GS-MoE gate: ``gate(expert_scores, features, mask)`` -> final snippet scores.

    Args:
        config: sizes (:class:`GateConfig`).
    """

    def __init__(self, config: GateConfig | None = None):
        super().__init__()
        c = self.config = config or GateConfig()
        if c.dim % c.heads or c.dim % 4:
            raise ValueError(f"gate dim={c.dim} must be divisible by heads={c.heads} and by 4")
        d = c.dim
        self.score_proj = nn.Linear(c.n_experts, d)                         # (a)
        if c.use_features:
            self.feat_proj = nn.Linear(c.feat_dim, d)
            self.experts_to_feats = CrossAttention(d, c.heads, c.dropout)   # (b) a queries f
            self.feats_to_experts = CrossAttention(d, c.heads, c.dropout)   #     f queries a
            self.fuse = nn.Linear(2 * d, d)
        self.block = CrossAttention(d, c.heads, c.dropout, cross=False)     # (c) self-attention
        self.norm_ff = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(c.dropout),
                                nn.Linear(2 * d, d), nn.Dropout(c.dropout))
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d // 2), nn.GELU(),
                                 nn.Linear(d // 2, d // 4), nn.GELU(), nn.Linear(d // 4, 1))

    def forward(self, expert_scores: Tensor, features: Tensor | None = None,
                mask: Tensor | None = None) -> dict[str, Tensor]:
        """Fuse expert scores (and task-aware features) into one anomaly score per snippet.

        Args:
            expert_scores: ``[B, T, E]`` expert scores in [0, 1].
            features: ``[B, T, feat_dim]`` task-aware features (ignored, may be None, when
                ``use_features=False``).
            mask: ``[B, T]`` bool validity mask (None: all valid).

        Returns:
            dict with ``scores`` ``[B, T]`` (0 at padding), ``logits`` ``[B, T]`` and
            ``hidden`` ``[B, T, dim]`` (the block output the MLP reads, for t-SNE plots).
        """
        c = self.config
        if expert_scores.dim() != 3 or expert_scores.shape[-1] != c.n_experts:
            raise ValueError(f"Gate expects expert_scores of shape [B, T, {c.n_experts}], "
                             f"got {tuple(expert_scores.shape)}")
        mask = check_mask(expert_scores, mask, "expert_scores")
        a = self.score_proj(expert_scores)
        if c.use_features:
            if features is None or features.shape[:2] != expert_scores.shape[:2] or features.shape[-1] != c.feat_dim:
                got = None if features is None else tuple(features.shape)
                raise ValueError(f"Gate expects features of shape [{expert_scores.shape[0]}, "
                                 f"{expert_scores.shape[1]}, {c.feat_dim}], got {got}")
            f = self.feat_proj(features)
            a, f = self.experts_to_feats(a, f, mask), self.feats_to_experts(f, a, mask)
            a = self.fuse(torch.cat([a, f], dim=-1))
        h = self.block(a, None, mask)
        h = h + self.ff(self.norm_ff(h))
        logits = self.mlp(h).squeeze(-1).masked_fill(~mask, 0.0)
        scores = torch.sigmoid(logits).masked_fill(~mask, 0.0)
        return {"scores": scores, "logits": logits, "hidden": h}
