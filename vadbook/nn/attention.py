"""Global-local multi-head self-attention (GL-MHSA) and the pre-norm transformer of UR-DMU.

UR-DMU (Zhou et al., AAAI 2023) lets every snippet look at the whole video in two ways at
once: a *global* branch, ordinary scaled dot-product attention, and a *local* branch whose
weights depend only on the temporal distance, ``exp(-|i - j| / e)``, so nearby snippets are
blended whatever their content. Each head returns both results side by side and one linear
layer mixes them.

Masks: padded snippets are removed from the keys of both branches (the weights are
renormalised over the valid keys), so the output at a valid snippet does not depend on the
padding. Outputs at padded queries are finite but meaningless.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["local_attention_weights", "GLMHSA", "FeedForward", "GLTransformer"]


def local_attention_weights(mask: torch.Tensor, temperature: float = math.e) -> torch.Tensor:
    """The fixed local attention of GL-MHSA, ``[B, T, T]``.

    ``w[b, i, j] = exp(-|i - j| / temperature)`` over the valid keys ``j`` of video ``b``,
    normalised so each row sums to 1. The public UR-DMU code divides by
    ``attn.sum(-1)`` broadcast along the last axis, which divides entry ``(i, j)`` by the sum
    of row ``j``; since the matrix is symmetric that normalises *columns*, not rows. We
    row-normalise, so the local branch is a proper weighted average. The normalisation is
    a softmax of ``-|i - j| / temperature`` (stable even where ``exp`` underflows).

    Args:
        mask: ``[B, T]`` bool, True for valid snippets (each video needs one).
        temperature: the distance scale, ``e`` in UR-DMU.
    """
    B, T = mask.shape
    pos = torch.arange(T, device=mask.device, dtype=torch.float32)
    logits = -(pos[:, None] - pos[None, :]).abs() / temperature  # [T, T]
    logits = logits[None].expand(B, T, T).masked_fill(~mask[:, None, :], float("-inf"))
    return logits.softmax(dim=-1)


class GLMHSA(nn.Module):
    """GL-MHSA: multi-head attention with a global and a distance-based local branch.

    Per head: ``global = softmax(q k^T / sqrt(dim_head)) v`` and ``local = A_local t`` with
    :func:`local_attention_weights`; the heads' ``[global, local]`` outputs are concatenated
    to ``2 * heads * dim_head`` channels and projected back to ``dim``.
    """

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 128, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.scale = dim_head ** -0.5
        self.to_qkvt = nn.Linear(dim, 4 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(2 * inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, dim]`` -> ``[B, T, dim]``; ``mask`` ``[B, T]`` bool (None: all valid)."""
        B, T, _ = x.shape
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=x.device)
        q, k, v, t = (z.reshape(B, T, self.heads, self.dim_head).transpose(1, 2)
                      for z in self.to_qkvt(x).chunk(4, dim=-1))  # each [B, H, T, dh]
        dots = (q @ k.transpose(-1, -2)) * self.scale  # [B, H, T, T]
        dots = dots.masked_fill(~mask[:, None, None, :], float("-inf"))
        glob = dots.softmax(dim=-1) @ v
        local = local_attention_weights(mask).to(t.dtype)[:, None] @ t
        out = torch.cat([glob, local], dim=-1)  # [B, H, T, 2 dh]
        return self.to_out(out.transpose(1, 2).reshape(B, T, -1))


class FeedForward(nn.Module):
    """Position-wise MLP ``Linear - GELU - Dropout - Linear - Dropout``."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GLTransformer(nn.Module):
    """UR-DMU's transformer: ``depth`` pre-LayerNorm residual blocks of GL-MHSA and MLP.

    ``x = x + GLMHSA(LN(x), mask)``; ``x = x + MLP(LN(x))``.

    Args:
        dim: channels (512 in UR-DMU).
        depth: blocks (2).
        heads: attention heads (4).
        dim_head: channels per head (128).
        mlp_dim: MLP hidden width (``dim`` in UR-DMU).
        dropout: dropout in attention output and MLP (0.5).
    """

    def __init__(self, dim: int, depth: int = 2, heads: int = 4, dim_head: int = 128,
                 mlp_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        mlp_dim = mlp_dim or dim
        self.blocks = nn.ModuleList(
            nn.ModuleDict({
                "norm1": nn.LayerNorm(dim),
                "attn": GLMHSA(dim, heads, dim_head, dropout),
                "norm2": nn.LayerNorm(dim),
                "mlp": FeedForward(dim, mlp_dim, dropout),
            }) for _ in range(depth))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, dim]`` -> ``[B, T, dim]``."""
        for blk in self.blocks:
            x = x + blk["attn"](blk["norm1"](x), mask)
            x = x + blk["mlp"](blk["norm2"](x))
        return x
