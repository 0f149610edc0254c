"""The memory unit of UR-DMU (Zhou et al., AAAI 2023).

A memory holds ``K`` learnable slots ``M`` ``[K, D]``. Each snippet ``x_t`` reads it with a
sigmoid (not softmax) attention, so several slots can fire at once and a snippet that
matches nothing gets low attention everywhere:

* ``attention = sigmoid(x M^T / sqrt(D))``, ``[B, T, K]``;
* ``temporal_att`` = mean of the ``K // 16 + 1`` largest slot attentions, ``[B, T]``: how
  strongly the snippet matches the memory (UR-DMU pushes it to 1 for the memory's own kind of
  snippet and to 0 for the other kind);
* ``augment = attention M``, ``[B, T, D]``: the memory's reconstruction of the snippet.

The unit works snippet by snippet, so padded snippets cannot affect valid ones.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MemoryUnit"]


class MemoryUnit(nn.Module):
    """A bank of ``slots`` learnable ``dim``-vectors read by sigmoid attention.

    Args:
        slots: number of memory items ``K`` (60 in UR-DMU).
        dim: feature size ``D``.
    """

    def __init__(self, slots: int, dim: int):
        super().__init__()
        self.slots, self.dim = slots, dim
        self.memory = nn.Parameter(torch.empty(slots, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.dim)
        nn.init.uniform_(self.memory, -bound, bound)

    @property
    def k(self) -> int:
        """Number of slots averaged in ``temporal_att``: ``K // 16 + 1``."""
        return self.slots // 16 + 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Read the memory.

        Args:
            x: ``[B, T, D]`` snippet features.

        Returns:
            ``temporal_att`` ``[B, T]``, ``augment`` ``[B, T, D]`` and the full slot
            ``attention`` ``[B, T, K]``.
        """
        B, T, D = x.shape
        if D != self.dim:
            raise ValueError(f"MemoryUnit has dim {self.dim} but the features have D = {D}")
        attention = torch.sigmoid(x @ self.memory.t() / math.sqrt(D))  # [B, T, K]
        temporal_att = attention.topk(self.k, dim=-1).values.mean(dim=-1)
        augment = attention @ self.memory
        return temporal_att, augment, attention
