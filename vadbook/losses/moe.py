"""The training objective of MoME (Sun et al.), Eq. (7), and its auxiliary terms.

``L = L_cls + L_m + lambda_1 L_b + lambda_2 L_reg + lambda_3 L_div + lambda_4 L_r`` (MoME Eq. (7)),
with the UCF-Crime weights of MoME section B, ``(1e-2, 1, 1e-5, 1e-3)``, as defaults. The
supplementary names the terms but not their formulas; the readings below are the standard
ones whose usual weights match section B (Switch Transformer's balance weight is 1e-2,
ST-MoE's router z-loss weight is 1e-3):

* ``L_cls``: top-k MIL BCE of the snippet scores (:func:`vadbook.losses.topk_bce`).
* ``L_m`` (:func:`memory_loss`): UR-DMU's four memory terms on the mixtures' memory
  similarities: anomaly similarity -> 1 on the top-k snippets of abnormal videos and -> 0 on
  every snippet of normal videos; normal similarity -> 1 on normal videos and -> 0 on the
  top-k (by ``1 - similarity``) snippets of abnormal videos.
* ``L_b`` (:func:`load_balance_loss`): Switch Transformer, ``E sum_e f_e P_e`` with ``f_e`` the
  fraction of assignments sent to expert ``e`` and ``P_e`` its mean gate; 1 when balanced,
  ``E`` when one expert takes everything.
* ``L_reg`` (:func:`allocation_overlap_loss`): MoME Figure 4 says regularisation makes experts
  specialise in *distinct* prototypes: the mean overlap between the allocation matrix's
  expert columns, ``1/P sum_p sum_{e != e'} A_pe A_pe' = 1/P sum_p (1 - sum_e A_pe^2)``.
* ``L_div`` (:func:`memory_diversity_loss`): mean pairwise cosine similarity of the experts'
  memories, each summarised by the mean of its L2-normalised slots (slot order is arbitrary).
* ``L_r`` (:func:`router_z_loss`): ST-MoE's router z-loss, ``mean_t logsumexp(z_t)^2`` of the
  router logits (explicit and implicit experts), which keeps them small.

Every function takes the ``[B, T]`` validity mask where snippets are involved; padded
snippets never count.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .mil import check_labels, check_mask, topk_bce

__all__ = ["MoMEWeights", "UCF_WEIGHTS", "XD_WEIGHTS", "load_balance_loss", "router_z_loss",
           "allocation_overlap_loss", "memory_diversity_loss", "memory_loss", "mome_objective"]


@dataclass(frozen=True)
class MoMEWeights:
    """``lambda_1 .. lambda_4`` of MoME Eq. (7): balance, regularisation, diversity, router."""

    balance: float = 1e-2
    reg: float = 1.0
    div: float = 1e-5
    router: float = 1e-3


UCF_WEIGHTS = MoMEWeights()                                   # MoME section B, UCF-Crime
XD_WEIGHTS = MoMEWeights(7e-5, 4e-5, 2e-5, 7e-4)              # MoME section B, XD-Violence


def _rows(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``[B, T, ...]`` -> valid rows ``[N, ...]``; ``[N, ...]`` passes through when mask is None."""
    if mask is None:
        return t
    mask = check_mask(t, mask, "gates")
    return t[mask]


def load_balance_loss(gates: torch.Tensor, index: torch.Tensor, mask: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """Switch-Transformer load balancing, ``E * sum_e f_e P_e`` (MoME ``L_b``).

    Args:
        gates: router probabilities ``[B, T, E]`` (or ``[N, E]`` with ``mask=None``).
        index: selected experts ``[B, T, k]`` (or ``[N, k]``), MoME Eq. (4).
        mask: ``[B, T]`` validity mask.

    Returns:
        Scalar; gradient flows through ``P_e`` only (``f_e`` counts are constants).
    """
    g, idx = _rows(gates, mask), _rows(index, mask)
    N, E = g.shape
    if idx.shape[0] != N:
        raise ValueError(f"index has {idx.shape[0]} rows but gates has {N}")
    f = torch.bincount(idx.reshape(-1), minlength=E).to(g.dtype) / idx.numel()
    return E * (f * g.mean(dim=0)).sum()


def router_z_loss(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """ST-MoE router z-loss, ``mean_t (logsumexp_e z_te)^2`` (MoME ``L_r``).

    ``logits`` ``[B, T, E]`` with ``mask`` ``[B, T]``, or ``[N, E]`` rows.
    """
    z = _rows(logits, mask)
    return torch.logsumexp(z, dim=-1).pow(2).mean()


def allocation_overlap_loss(allocation: torch.Tensor) -> torch.Tensor:
    """Overlap of experts in the prototype allocation matrix (MoME ``L_reg``, Figure 4).

    Args:
        allocation: ``A`` ``[P, E]``, each row a distribution of prototype ``p`` over experts.

    Returns:
        ``1/P sum_p sum_{e != e'} A_pe A_pe'`` = ``1/P sum_p (1 - sum_e A_pe^2)``: 0 when each
        prototype belongs to a single expert, ``1 - 1/E`` when every row is uniform.
    """
    if allocation.dim() != 2:
        raise ValueError(f"allocation must be [P, E], got shape {tuple(allocation.shape)}")
    return (1 - allocation.pow(2).sum(dim=1)).mean()


def memory_diversity_loss(memories: torch.Tensor) -> torch.Tensor:
    """Mean pairwise cosine similarity between expert memories (MoME ``L_div``).

    Args:
        memories: ``[E, K, d]``; expert ``e`` is summarised by ``c_e`` = mean of its
            L2-normalised slots.

    Returns:
        ``1 / (E (E - 1)) sum_{e != e'} cos(c_e, c_e')`` (0 for a single expert): 1 when all
        experts store the same slots, 0 when their memories are mutually orthogonal.
    """
    if memories.dim() != 3:
        raise ValueError(f"memories must be [E, K, d], got shape {tuple(memories.shape)}")
    E = memories.shape[0]
    if E < 2:
        return memories.sum() * 0
    c = F.normalize(F.normalize(memories, dim=-1).mean(dim=1), dim=-1)     # [E, d]
    sim = c @ c.t()
    return (sim.sum() - sim.diagonal().sum()) / (E * (E - 1))


def _masked_bce(p: torch.Tensor, target: float, mask: torch.Tensor) -> torch.Tensor:
    nll = F.binary_cross_entropy(p, torch.full_like(p, target), reduction="none")
    return (nll * mask).sum() / mask.sum()


def memory_loss(anomaly_att: torch.Tensor, normal_att: torch.Tensor, labels: torch.Tensor,
                mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """UR-DMU's memory terms on the two mixtures' memory similarities (MoME ``L_m``).

    Args:
        anomaly_att, normal_att: ``[B, T]`` memory similarities in [0, 1] of MoAE and MoNE.
        labels: ``[B]`` video labels; the batch needs both kinds.
        mask: ``[B, T]`` validity mask.

    Returns:
        Dict ``A_loss``, ``panomaly``, ``N_loss``, ``A_Nloss``, ``memory`` (their sum).
    """
    mask = check_mask(anomaly_att, mask, "anomaly_att")
    is_abn = check_labels(labels, anomaly_att.shape[0]).bool()
    if is_abn.all() or not is_abn.any():
        raise ValueError(f"memory_loss needs normal and abnormal videos, got {int(is_abn.sum())} "
                         f"abnormal of {is_abn.numel()}")
    m_abn, m_nor = mask[is_abn], mask[~is_abn]
    ones = torch.ones(m_abn.shape[0], device=anomaly_att.device)
    parts = {
        "A_loss": topk_bce(anomaly_att[is_abn], ones, m_abn),
        "panomaly": topk_bce(1 - normal_att[is_abn], ones, m_abn),
        "N_loss": _masked_bce(normal_att[~is_abn], 1.0, m_nor),
        "A_Nloss": _masked_bce(anomaly_att[~is_abn], 0.0, m_nor),
    }
    parts["memory"] = sum(parts.values())
    return parts


def mome_objective(parts: dict[str, torch.Tensor], weights: MoMEWeights = UCF_WEIGHTS) -> torch.Tensor:
    """MoME Eq. (7) from the terms ``cls``, ``memory``, ``balance``, ``reg``, ``div``, ``router``."""
    missing = {"cls", "memory", "balance", "reg", "div", "router"} - set(parts)
    if missing:
        raise ValueError(f"mome_objective is missing the terms {sorted(missing)}")
    return (parts["cls"] + parts["memory"] + weights.balance * parts["balance"] + weights.reg * parts["reg"]
            + weights.div * parts["div"] + weights.router * parts["router"])
