"""Mixtures of memory experts (MoME, Sun et al.): top-k routing with a real sparse dispatch.

A *memory expert* is a UR-DMU memory (:class:`vadbook.nn.MemoryUnit`): ``K`` learnable slots
``M_e`` ``[K, d]`` read by ``att = sigmoid(x M_e^T / sqrt(d))`` and ``augment = att M_e``. A
*mixture* holds ``E`` of them (one ``[E, K, d]`` parameter) and a router that scores every
snippet against every expert, ``G`` ``[N, E]``; then (MoME A.2):

* Eq. (4) ``I, R = TopK(G, k)``: indices ``[N, k]`` and routing weights ``[N, k]``;
* Eq. (5) ``P[t, e] = 1`` iff ``e in I_t``: the binary routing matrix;
* Eq. (6) ``X_e = {x_t | P[t, e] = 1}``: expert ``e`` reads only its own snippets.

Sparse dispatch (:func:`grouped_memory_read`): the ``N k`` (snippet, expert) assignments are
sorted by expert and each expert's group is padded to a multiple of a block of ``b`` rows
(block-sparse grouping, as in MegaBlocks); every block belongs to one expert, so two batched
matmuls over the blocks read all memories at once. The block is the mean load,
``b = ceil(N k / E)`` (:func:`block_size`): a balanced router fills one block per expert (the
capacity layout of Switch / GShard), and an overloaded expert gets extra blocks instead of
dropping snippets. Padded rows number at most ``E (b - 1) < N k``, so the work is between
``N k K d`` and ``2 N k K d`` whatever ``E`` and whatever the routing.
:func:`dense_memory_read` is the reference that runs every expert on every snippet
(``N E K d``).

Readings chosen where the supplementary is silent (documented in the chapter, tested):

* Routing weights are the gate values themselves (Eq. (4) as written, Switch-Transformer
  style, not renormalised), so with ``k = 1`` the task loss still trains the router:
  ``augment = sum_j R_j augment_j``. A mixture's memory similarity (UR-DMU's temporal
  attention) is the ``R``-weighted *mean* ``sum_j R_j att_j / sum_j R_j``, in [0, 1].
* One softmax over all experts of a mixture, ``G_t = softmax(z_t)``, as in Switch. Implicit
  experts (latent router): ``z^i_t = W_r h_t``. Explicit experts (anomaly prototype router):
  the snippet is standardised with batch statistics (so that the feature every snippet
  shares does not pick the prototype) and projected into the text space (learned
  ``d -> D_text`` map), compared by
  cosine with the ``P`` prototype embeddings, ``q_t = softmax(cos / tau)`` over prototypes
  (nearly one-hot at ``tau = 3e-3``), and takes the logits of its prototype from a learned
  table ``Lambda`` ``[P, E_x]``: ``z^x_t = q_t Lambda``. The expert-prototype *allocation
  matrix* of MoME Figure 4 is ``A = softmax_e(Lambda)``: how each prototype spreads over the
  explicit experts. ``z_t = [z^x_t ; z^i_t]``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.mil import check_mask

__all__ = ["route_topk", "routing_matrix", "block_size", "dispatch_plan", "grouped_memory_read",
           "dense_memory_read", "temporal_attention", "MemoryExperts", "PrototypeRouter", "MemoryMixture"]


def route_topk(gates: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """MoME Eq. (4): ``I, R = TopK(G, k)`` for gates ``[N, E]`` -> ``[N, k]`` long, ``[N, k]``."""
    E = gates.shape[-1]
    if not 1 <= k <= E:
        raise ValueError(f"top_k must be in [1, {E}] (the number of experts), got {k}")
    weights, index = gates.topk(k, dim=-1)
    return index, weights


def routing_matrix(index: torch.Tensor, n_experts: int) -> torch.Tensor:
    """MoME Eq. (5): binary ``P`` ``[N, E]`` with ``P[t, e] = 1`` iff ``e in I_t``."""
    P = torch.zeros(*index.shape[:-1], n_experts, device=index.device)
    return P.scatter(-1, index, 1.0)


def block_size(n_rows: int, n_experts: int) -> int:
    """Rows per block: the mean load ``ceil(n_rows / E)`` (at least 1), so padding < ``n_rows``."""
    return max(1, -(-n_rows // n_experts))


def dispatch_plan(expert_idx: torch.Tensor, n_experts: int, block: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """MoME Eq. (6) as a buffer layout: every expert's rows contiguous, padded to blocks.

    Args:
        expert_idx: ``[R]`` long, the expert of each assignment.
        n_experts: ``E``.
        block: rows per block ``b``.

    Returns:
        ``pos`` ``[R]``: each assignment's row in the padded buffer (assignments of one
        expert keep their order); ``block_expert`` ``[n_blocks]``: the expert of each block.
        An expert with no assignment gets no block.
    """
    R = expert_idx.numel()
    counts = torch.bincount(expert_idx, minlength=n_experts)                  # [E]
    padded = (counts + block - 1) // block * block
    order = torch.argsort(expert_idx, stable=True)
    sorted_e = expert_idx[order]
    rank = torch.arange(R, device=expert_idx.device) - (counts.cumsum(0) - counts)[sorted_e]
    pos = torch.empty_like(expert_idx)
    pos[order] = (padded.cumsum(0) - padded)[sorted_e] + rank
    block_expert = torch.repeat_interleave(torch.arange(n_experts, device=expert_idx.device), padded // block)
    return pos, block_expert


def grouped_memory_read(x: torch.Tensor, memories: torch.Tensor, expert_idx: torch.Tensor,
                        block: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row ``x_r`` reads only the memory of its expert ``e_r`` (sparse, grouped).

    Args:
        x: ``[R, d]`` rows (one per assignment).
        memories: ``[E, K, d]``.
        expert_idx: ``[R]`` long in ``[0, E)``.
        block: rows per block (None: :func:`block_size`).

    Returns:
        Slot attention ``[R, K]`` and augmented features ``[R, d]``, equal to
        ``sigmoid(x_r M_e^T / sqrt(d))`` and ``att M_e`` of :class:`~vadbook.nn.MemoryUnit`.
    """
    R, d = x.shape
    E, K, _ = memories.shape
    if R == 0:
        return x.new_zeros(0, K), x.new_zeros(0, d)
    b = block or block_size(R, E)
    pos, block_expert = dispatch_plan(expert_idx, E, b)
    n_blocks = block_expert.numel()
    buf = x.new_zeros(n_blocks * b, d).index_copy(0, pos, x).view(n_blocks, b, d)
    mem = memories[block_expert]                                              # [n_blocks, K, d]
    att = torch.sigmoid(torch.bmm(buf, mem.transpose(1, 2)) / math.sqrt(d))  # [n_blocks, b, K]
    aug = torch.bmm(att, mem)                                                 # [n_blocks, b, d]
    return att.reshape(-1, K)[pos], aug.reshape(-1, d)[pos]


def dense_memory_read(x: torch.Tensor, memories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: every expert reads every row. ``[R, d]`` -> att ``[R, E, K]``, aug ``[R, E, d]``."""
    d = x.shape[-1]
    att = torch.sigmoid(torch.einsum("rd,ekd->rek", x, memories) / math.sqrt(d))
    return att, torch.einsum("rek,ekd->red", att, memories)


def temporal_attention(att: torch.Tensor) -> torch.Tensor:
    """UR-DMU's memory similarity: mean of the ``K // 16 + 1`` largest slot attentions."""
    K = att.shape[-1]
    return att.topk(K // 16 + 1, dim=-1).values.mean(dim=-1)


class MemoryExperts(nn.Module):
    """``experts`` UR-DMU memories of ``slots`` x ``dim``, read sparsely or densely.

    Args:
        experts: ``E``.
        slots: ``K`` per expert (MoME: ``M_in = 60``).
        dim: ``d``.
    """

    def __init__(self, experts: int, slots: int, dim: int):
        super().__init__()
        if experts < 1 or slots < 1:
            raise ValueError(f"need at least one expert and one slot, got experts={experts}, slots={slots}")
        self.memories = nn.Parameter(torch.empty(experts, slots, dim))
        nn.init.uniform_(self.memories, -1 / math.sqrt(dim), 1 / math.sqrt(dim))  # as MemoryUnit

    def forward(self, x: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, sparse: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix the selected experts' reads of rows ``x`` ``[N, d]``.

        Args:
            index, weights: ``[N, k]`` from :func:`route_topk`.
            sparse: grouped dispatch (True) or the dense reference (every expert on every row).

        Returns:
            ``augment`` ``[N, d]`` = ``sum_j R_j aug_{I_j}`` and ``temporal_att`` ``[N]`` =
            ``sum_j R_j att_{I_j} / sum_j R_j``.
        """
        N, d = x.shape
        k = index.shape[1]
        if sparse:
            rows = x if k == 1 else x.repeat_interleave(k, dim=0)
            att, aug = grouped_memory_read(rows, self.memories, index.reshape(-1))
            att_t, aug = temporal_attention(att).view(N, k), aug.view(N, k, d)
        else:
            att_all, aug_all = dense_memory_read(x, self.memories)
            combine = torch.zeros(N, self.memories.shape[0], device=x.device, dtype=x.dtype)
            combine = combine.scatter(1, index, weights)   # R placed by P (Eq. (5))
            augment = torch.einsum("ne,ned->nd", combine, aug_all)
            temporal = (combine * temporal_attention(att_all)).sum(1) / weights.sum(1).clamp_min(1e-12)
            return augment, temporal
        augment = (weights[..., None] * aug).sum(1)
        return augment, (weights * att_t).sum(1) / weights.sum(1).clamp_min(1e-12)


class PrototypeRouter(nn.Module):
    """Anomaly prototype router: logits of the explicit experts from text prototypes.

    ``q = softmax(cos(W_q BN(h), p) / tau)`` over the ``P`` prototypes (``BN``: batch
    standardisation without affine parameters, see :meth:`standardise`) and logits ``z = q Lambda``
    from a learned prototype-by-expert table; ``A = softmax(Lambda)`` over experts is the
    expert-prototype allocation matrix (MoME Figure 4). ``W_q`` starts as the identity when the
    prototypes live in the feature space (``D_text = d``, text-aligned features), so routing
    starts from plain cosine similarity, as with CLIP.

    Args:
        dim: feature size ``d``.
        prototypes: ``[P, D_text]`` text embeddings of the anomaly prototypes (kept fixed).
        experts: explicit experts ``E_x``.
        tau: temperature (MoME B: ``3e-3``).
    """

    def __init__(self, dim: int, prototypes: torch.Tensor, experts: int, tau: float = 3e-3):
        super().__init__()
        if prototypes.dim() != 2 or prototypes.shape[0] < 1:
            raise ValueError(f"prototypes must be [P, D_text] with P >= 1, got {tuple(prototypes.shape)}")
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.tau = tau
        self.register_buffer("prototypes", F.normalize(prototypes.float(), dim=-1))
        self.query = nn.Linear(dim, prototypes.shape[1], bias=False)
        if prototypes.shape[1] == dim:
            nn.init.eye_(self.query.weight)
        self.allocation_logits = nn.Parameter(torch.randn(prototypes.shape[0], experts))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def standardise(self, h: torch.Tensor) -> torch.Tensor:
        """Batch-norm ``h`` ``[N, d]`` without affine parameters (running statistics in eval mode).

        Every snippet shares a large common component (the scene mean); without removing it,
        the same prototype would be the nearest one for every snippet at ``tau = 3e-3``.
        """
        train = self.training and h.shape[0] > 1
        return F.batch_norm(h, self.running_mean, self.running_var, training=train, momentum=0.1)

    def allocation(self) -> torch.Tensor:
        """The expert-prototype allocation matrix ``A`` ``[P, E_x]`` (rows sum to 1)."""
        return self.allocation_logits.softmax(dim=-1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``h`` ``[N, d]`` -> explicit-expert logits ``[N, E_x]`` and prototype probabilities ``[N, P]``."""
        cos = F.normalize(self.query(self.standardise(h)), dim=-1) @ self.prototypes.t()
        q = (cos / self.tau).softmax(dim=-1)
        return q @ self.allocation_logits, q


class MemoryMixture(nn.Module):
    """A mixture of memory experts with its router: MoNE (all implicit) or MoAE.

    Args:
        dim: feature size ``d``.
        experts: total experts ``E`` of the mixture.
        slots: memory slots per expert.
        top_k: experts per snippet (MoME: 1).
        explicit: how many of the ``E`` experts are explicit (routed by prototypes).
        prototypes: ``[P, D_text]`` prototype embeddings, required when ``explicit > 0``.
        tau: prototype temperature.
        sparse: use the grouped dispatch (False: dense reference, for tests and FLOP plots).
    """

    def __init__(self, dim: int, experts: int, slots: int = 60, top_k: int = 1, explicit: int = 0,
                 prototypes: torch.Tensor | None = None, tau: float = 3e-3, sparse: bool = True):
        super().__init__()
        if not 0 <= explicit <= experts:
            raise ValueError(f"explicit experts must be in [0, {experts}], got {explicit}")
        if not 1 <= top_k <= experts:
            raise ValueError(f"top_k must be in [1, {experts}] (the number of experts), got {top_k}")
        if explicit and prototypes is None:
            raise ValueError(f"{explicit} explicit experts need prototype embeddings, got None")
        self.dim, self.n_experts, self.top_k, self.explicit, self.sparse = dim, experts, top_k, explicit, sparse
        self.experts = MemoryExperts(experts, slots, dim)
        self.prototype_router = PrototypeRouter(dim, prototypes, explicit, tau) if explicit else None
        self.latent_router = nn.Linear(dim, experts - explicit) if explicit < experts else None

    def gates(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """Router outputs for rows ``h`` ``[N, d]``: ``router_logits`` ``z`` and ``gates``
        ``softmax(z)`` ``[N, E]`` (explicit experts first), ``prototype_probs`` ``[N, P]``."""
        logits, out = [], {}
        if self.prototype_router is not None:
            z_x, out["prototype_probs"] = self.prototype_router(h)
            logits.append(z_x)
        if self.latent_router is not None:
            logits.append(self.latent_router(h))
        out["router_logits"] = torch.cat(logits, dim=-1)
        out["gates"] = out["router_logits"].softmax(dim=-1)
        return out

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Route every valid snippet of ``x`` ``[B, T, d]`` to its top-k experts and read them.

        Returns:
            ``augment`` ``[B, T, d]``, ``temporal_att`` ``[B, T]`` (memory similarity),
            ``router_logits`` / ``gates`` ``[B, T, E]``, ``index`` / ``weights`` ``[B, T, k]`` (Eq. (4);
            index -1 at padding), plus ``prototype_probs`` ``[B, T, P]`` with explicit experts. Padded
            snippets are never dispatched; their outputs are 0.
        """
        B, T, d = x.shape
        if d != self.dim:
            raise ValueError(f"MemoryMixture has dim {self.dim} but the features have d = {d}")
        mask = check_mask(x, mask, "x")
        h = x[mask]                                                           # [N, d] valid only
        routed = self.gates(h)
        index, weights = route_topk(routed["gates"], self.top_k)
        augment, temporal = self.experts(h, index, weights, sparse=self.sparse)
        rows = {"augment": augment, "temporal_att": temporal, "weights": weights, **routed}
        out = {}
        for name, v in rows.items():
            full = v.new_zeros(B, T, *v.shape[1:])
            full[mask] = v
            out[name] = full
        out["index"] = torch.full((B, T, self.top_k), -1, dtype=torch.long, device=x.device)
        out["index"][mask] = index
        return out
