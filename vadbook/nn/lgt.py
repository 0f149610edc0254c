"""The local-global temporal block (LGT-Adapter of VadCLIP, LEC-VAD Eq. (1), MoME A.1 Eq. (1)-(3)).

CLIP-style snippet features are computed frame by frame and know nothing about time. VadCLIP's
*LGT-Adapter*, reused by LEC-VAD and MoME, adds time in two steps:

1. **Local module.** A transformer whose self-attention is restricted to non-overlapping
   windows of ``window`` snippets (VadCLIP builds a block-diagonal attention mask; the papers'
   text says "overlapping" windows but the masks they describe and the public code do not
   overlap). We reshape ``[B, T, d]`` to ``[B * T / window, window, d]`` instead of masking a
   ``T x T`` matrix, so the cost is ``O(T * window)``. Output: ``X_l``.
2. **Global module.** A one-layer GCN over the whole video with two adjacencies:

   * similarity (LEC-VAD Eq. (1), MoME Eq. (1)): ``A = X_l X_l^T / (||X_l|| ||X_l||)``,
     then VadCLIP's ``F.threshold(A, 0.7, 0)`` (entries ``<= 0.7`` become 0) and a row
     softmax. Note that this does not cut weak edges: they get weight ``exp(0) = 1``
     instead of ``exp(A_ij)``, so the threshold sharpens the contrast rather than sparsifies;
   * distance (MoME Eq. (2)): ``H_dis(i, j) = -|i - j| / sigma`` with a row softmax.

   ``X_g = GELU([Softmax(H_sim) X_l ; Softmax(H_dis) X_l] W)`` with ``W in R^{2d x d}``
   (MoME Eq. (3)); without the distance branch it is LEC-VAD Eq. (1),
   ``F = GELU(Softmax(A) X_l W)`` with ``W in R^{d x d}``.

Reading chosen: MoME says "both modules employ residual connections"; LEC-VAD Eq. (1) shows
none. ``residual=True`` (default) returns ``X_l + X_g``; ``residual=False`` returns ``X_g``.
No positional embedding is added (VadCLIP adds a learned one before the local module; the
caller can add its own).

Masks: padded snippets never act as keys (attention and both adjacencies renormalise over
valid snippets), so outputs at valid snippets do not depend on padding. Outputs at padded
snippets are set to 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.mil import check_mask

__all__ = ["similarity_adjacency", "distance_adjacency", "WindowTransformer", "LGTBlock"]


def similarity_adjacency(x: torch.Tensor, mask: torch.Tensor, threshold: float | None = 0.7
                         ) -> torch.Tensor:
    """Row-softmax of the thresholded cosine similarity, ``[B, T, T]`` (LEC-VAD Eq. (1)).

    Args:
        x: ``[B, T, d]`` features ``X_l``.
        mask: ``[B, T]`` bool, True = valid; invalid keys get weight 0.
        threshold: entries ``<= threshold`` are set to 0 before the softmax (VadCLIP's
            ``F.threshold(A, 0.7, 0)``); None keeps the raw cosine (Eq. (1) as printed).
    """
    xn = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = xn @ xn.transpose(1, 2)
    if threshold is not None:
        cos = torch.where(cos > threshold, cos, torch.zeros_like(cos))
    cos = cos.masked_fill(~mask[:, None, :], float("-inf"))
    return cos.softmax(dim=-1)


def distance_adjacency(mask: torch.Tensor, sigma: float = 1.0, dtype: torch.dtype = torch.float32
                       ) -> torch.Tensor:
    """Row-softmax of ``H_dis(i, j) = -|i - j| / sigma`` over valid keys, ``[B, T, T]`` (MoME Eq. (2))."""
    if sigma <= 0:
        raise ValueError(f"distance_sigma must be > 0, got {sigma}")
    B, T = mask.shape
    pos = torch.arange(T, device=mask.device, dtype=dtype)
    logits = -(pos[:, None] - pos[None, :]).abs() / sigma
    logits = logits[None].expand(B, T, T).masked_fill(~mask[:, None, :], float("-inf"))
    return logits.softmax(dim=-1)


class _WindowLayer(nn.Module):
    """Pre-norm transformer layer: ``x += MHA(LN(x))``; ``x += MLP(LN(x))`` (CLIP's block)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(4 * dim, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[N, w, d]``; ``key_padding`` ``[N, w]`` bool, True = ignore this key."""
        h = self.norm1(x)
        h, _ = self.attn(h, h, h, key_padding_mask=key_padding, need_weights=False)
        x = x + self.drop(h)
        return x + self.mlp(self.norm2(x))


class WindowTransformer(nn.Module):
    """The local module: ``depth`` transformer layers, attention only inside windows.

    Windows are ``[0, w), [w, 2w), ...`` of every video (the last one may be short).

    Args:
        dim: channels ``d``.
        window: snippets per window (VadCLIP: 8 on UCF-Crime, 64 on XD-Violence).
        heads: attention heads (``dim`` must be divisible by it).
        depth: layers.
        dropout: dropout on attention weights, attention output and MLP.
    """

    def __init__(self, dim: int, window: int = 8, heads: int = 4, depth: int = 1, dropout: float = 0.1):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if dim % heads:
            raise ValueError(f"dim = {dim} must be divisible by heads = {heads}")
        self.window = window
        self.layers = nn.ModuleList(_WindowLayer(dim, heads, dropout) for _ in range(depth))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, d]``, ``[B, T]`` bool -> ``[B, T, d]`` (0 at padded snippets)."""
        B, T, d = x.shape
        w = self.window
        n_win = -(-T // w)
        pad = n_win * w - T
        xw = F.pad(x, (0, 0, 0, pad)).reshape(B * n_win, w, d)
        ignore = F.pad(~mask, (0, pad), value=True).reshape(B * n_win, w)
        # A window made only of padding would softmax over nothing (NaN): let it attend to
        # itself; its outputs are zeroed below and it is never a key for a valid snippet.
        ignore = ignore & ~ignore.all(dim=1, keepdim=True)
        for layer in self.layers:
            xw = layer(xw, ignore)
        out = xw.reshape(B, n_win * w, d)[:, :T]
        return out * mask[..., None].to(out.dtype)


class LGTBlock(nn.Module):
    """Local window transformer + similarity (and distance) GCN, batched with masks.

    ``LGTBlock(d, use_distance=False)`` is LEC-VAD Eq. (1); the default
    (``use_distance=True``) is the LGT-Adapter of MoME A.1 Eq. (1)-(3).

    Args:
        dim: channels ``d`` (input = output).
        window: local window length.
        heads: attention heads of the local module.
        depth: layers of the local module.
        sim_threshold: cosine threshold of the similarity adjacency (None: none).
        use_distance: add the distance adjacency branch (``W`` becomes ``2d x d``).
        distance_sigma: ``sigma`` of MoME Eq. (2).
        dropout: dropout in the local module.
        residual: return ``X_l + X_g`` (True) or ``X_g``.

    Example::

        block = LGTBlock(128, window=8)
        y = block(x, mask)            # x [B, T, 128], mask [B, T] bool -> y [B, T, 128]
    """

    def __init__(self, dim: int, window: int = 8, heads: int = 4, depth: int = 1,
                 sim_threshold: float | None = 0.7, use_distance: bool = True,
                 distance_sigma: float = 1.0, dropout: float = 0.1, residual: bool = True):
        super().__init__()
        if distance_sigma <= 0:
            raise ValueError(f"distance_sigma must be > 0, got {distance_sigma}")
        self.dim, self.sim_threshold = dim, sim_threshold
        self.use_distance, self.distance_sigma, self.residual = use_distance, distance_sigma, residual
        self.local = WindowTransformer(dim, window, heads, depth, dropout)
        self.W = nn.Linear((2 if use_distance else 1) * dim, dim, bias=False)

    def adjacencies(self, x_local: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """The row-stochastic ``[B, T, T]`` adjacencies used by the GCN (similarity first)."""
        adj = [similarity_adjacency(x_local, mask, self.sim_threshold)]
        if self.use_distance:
            adj.append(distance_adjacency(mask, self.distance_sigma, x_local.dtype))
        return adj

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, T, d]``, ``mask`` ``[B, T]`` bool (None: all valid) -> ``[B, T, d]``."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"LGTBlock expects x of shape [B, T, {self.dim}], got {tuple(x.shape)}")
        mask = check_mask(x, mask, "x")
        x_local = self.local(x, mask)
        agg = torch.cat([a @ x_local for a in self.adjacencies(x_local, mask)], dim=-1)
        x_global = F.gelu(self.W(agg))
        out = x_local + x_global if self.residual else x_global
        return out * mask[..., None].to(out.dtype)
