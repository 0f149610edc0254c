"""GS-MoE stage 2: one expert per anomaly class, all experts in one batched computation.

Each expert (GS-MoE Sec. 3.2, "Stage 2") is "a transformer block with four self-attention
heads and a MLP with GELU activation, which maps the extracted features to an anomaly score
for its respective class". Reading chosen (the paper gives no sizes):

    h = x W_in + b_in                                  (task-aware features -> expert width)
    h = h + MHSA(LN_1(h), mask)                        (4 heads, pre-LayerNorm)
    h = h + W_2 GELU(W_1 LN_2(h))                      (the block's feed-forward)
    s = sigmoid(w_4 GELU(W_3 h))                       (the score MLP with GELU)

The authors train and run the experts one after another. Here the ``E`` experts are one
module whose parameters are stacked along a leading expert axis (``W_in`` is
``[E, in_dim, dim]``, and so on): every layer is one batched matmul over ``[E, B*T, .]`` and
the attention one call over ``E * B`` sequences, so there is no Python loop over experts in
the forward or the backward pass. :meth:`ClassExperts.unstack` rebuilds the experts as
separate standard modules (``nn.Linear``, ``nn.MultiheadAttention``) holding the same
numbers: the sequential reference that tests and timings compare against.

Training (:func:`expert_tgs_loss`): expert ``e`` sees only normal videos and the abnormal
videos assigned to it (its class, or its K-Means cluster); GS-MoE's L_TGS (Eq. (6)) is
computed for all experts at once with a ``[E, B]`` video mask and summed over experts, so
each expert's gradient is exactly that of training it alone on its own videos (tested).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.mil import check_labels, check_mask, topk_bce
from ..splatting import tgs_targets

__all__ = ["ExpertConfig", "ClassExperts", "Expert", "expert_video_mask", "expert_tgs_loss"]


@dataclass
class ExpertConfig:
    """Sizes of the experts. ``dim`` must be divisible by ``heads``."""

    n_experts: int = 13
    in_dim: int = 512         # task-aware feature width (UR-DMU's dim)
    dim: int = 128            # expert width (64 in the book's small runs)
    heads: int = 4            # "four self-attention heads"
    mlp_dim: int | None = None  # feed-forward hidden width (None: 2 * dim)
    head_hidden: int | None = None  # score-MLP hidden width (None: dim // 2)
    dropout: float = 0.1      # on the residual branches (not on attention weights)


def _stacked(E: int, fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
    """``[E, fan_in, fan_out]`` weights and ``[E, fan_out]`` biases, nn.Linear's init per expert."""
    bound = 1.0 / math.sqrt(fan_in)
    w = nn.Parameter(torch.empty(E, fan_in, fan_out).uniform_(-bound, bound))
    b = nn.Parameter(torch.empty(E, fan_out).uniform_(-bound, bound))
    return w, b


def _linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Per-expert affine map: ``x`` ``[E, N, i]`` (or ``[N, i]``, shared) -> ``[E, N, o]``, one bmm."""
    if x.dim() == 2:
        x = x.expand(w.shape[0], *x.shape)
    return torch.baddbmm(b[:, None, :], x, w)


def _layer_norm(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """LayerNorm over the last axis with per-expert affine ``[E, d]``; ``x`` ``[E, N, d]``."""
    return F.layer_norm(x, x.shape[-1:]) * gamma[:, None, :] + beta[:, None, :]


class ClassExperts(nn.Module):
    """``E`` experts with stacked parameters; ``forward`` runs all of them at once.

    Args:
        config: sizes (:class:`ExpertConfig`).
    """

    def __init__(self, config: ExpertConfig | None = None):
        super().__init__()
        c = self.config = config or ExpertConfig()
        if c.dim % c.heads:
            raise ValueError(f"expert dim={c.dim} is not divisible by heads={c.heads}")
        E, d = c.n_experts, c.dim
        self.mlp_dim, self.head_hidden = c.mlp_dim or 2 * d, c.head_hidden or d // 2
        self.w_in, self.b_in = _stacked(E, c.in_dim, d)
        self.ln1_w, self.ln1_b = nn.Parameter(torch.ones(E, d)), nn.Parameter(torch.zeros(E, d))
        self.w_qkv, self.b_qkv = _stacked(E, d, 3 * d)
        self.w_out, self.b_out = _stacked(E, d, d)
        self.ln2_w, self.ln2_b = nn.Parameter(torch.ones(E, d)), nn.Parameter(torch.zeros(E, d))
        self.w_ff1, self.b_ff1 = _stacked(E, d, self.mlp_dim)
        self.w_ff2, self.b_ff2 = _stacked(E, self.mlp_dim, d)
        self.w_h1, self.b_h1 = _stacked(E, d, self.head_hidden)
        self.w_h2, self.b_h2 = _stacked(E, self.head_hidden, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Score every snippet with every expert.

        Args:
            x: ``[B, T, in_dim]`` task-aware features.
            mask: ``[B, T]`` bool validity mask (None: all valid). Padded snippets are
                never attended to; their outputs are finite and set to logit 0 / score 0.

        Returns:
            dict with ``logits`` and ``scores`` ``[B, T, E]`` (scores = sigmoid(logits), 0
            at padding) and ``hidden`` ``[B, T, E, dim]`` (each expert's block output).
        """
        c = self.config
        if x.dim() != 3 or x.shape[-1] != c.in_dim:
            raise ValueError(f"ClassExperts expects x of shape [B, T, {c.in_dim}], got {tuple(x.shape)}")
        mask = check_mask(x, mask, "x")
        logits, hidden = self._run(x, mask, dict(self.named_parameters()))
        scores = torch.sigmoid(logits).masked_fill(~mask[..., None], 0.0)
        return {"logits": logits, "scores": scores, "hidden": hidden}

    def forward_sequential(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Logits ``[B, T, E]`` computed one expert after another (same kernels, E = 1 each).

        The reference code's way of running experts, kept for timings; not a training path.
        """
        mask = check_mask(x, mask, "x")
        params = dict(self.named_parameters())
        return torch.cat([self._run(x, mask, {k: v[e:e + 1] for k, v in params.items()})[0]
                          for e in range(self.config.n_experts)], dim=-1)

    def _run(self, x: Tensor, mask: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The stacked computation for the experts whose parameters are in ``p`` (``E = len``)."""
        B, T, _ = x.shape
        E, d, H = p["w_in"].shape[0], self.config.dim, self.config.heads
        drop = self.config.dropout if self.training else 0.0
        h = _linear(x.reshape(B * T, -1), p["w_in"], p["b_in"])                       # [E, BT, d]
        q, k, v = _linear(_layer_norm(h, p["ln1_w"], p["ln1_b"]), p["w_qkv"], p["b_qkv"]).chunk(3, dim=-1)
        q, k, v = (z.reshape(E * B, T, H, d // H).transpose(1, 2) for z in (q, k, v))  # [EB, H, T, dh]
        keys = mask[None, :, None, None, :].expand(E, B, 1, 1, T).reshape(E * B, 1, 1, T)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
        att = att.transpose(1, 2).reshape(E, B * T, d)
        h = h + F.dropout(_linear(att, p["w_out"], p["b_out"]), drop, self.training)
        ff = F.dropout(F.gelu(_linear(_layer_norm(h, p["ln2_w"], p["ln2_b"]), p["w_ff1"], p["b_ff1"])),
                       drop, self.training)
        h = h + F.dropout(_linear(ff, p["w_ff2"], p["b_ff2"]), drop, self.training)
        logits = _linear(F.gelu(_linear(h, p["w_h1"], p["b_h1"])), p["w_h2"], p["b_h2"])  # [E, BT, 1]
        logits = logits.reshape(E, B, T).permute(1, 2, 0).masked_fill(~mask[..., None], 0.0)
        return logits, h.reshape(E, B, T, d).permute(1, 2, 0, 3)

    @torch.no_grad()
    def unstack(self) -> nn.ModuleList:
        """The experts as ``E`` separate :class:`Expert` modules with copies of the weights.

        This is how the reference implementation holds them (one model per class); used as
        the sequential baseline in timings and tests.
        """
        out = nn.ModuleList()
        for e in range(self.config.n_experts):  # a one-off conversion, not a compute path
            ex = Expert(self.config).to(self.w_in.device)
            for lin, w, b in ((ex.proj, self.w_in, self.b_in), (ex.attn.out_proj, self.w_out, self.b_out),
                              (ex.ff1, self.w_ff1, self.b_ff1), (ex.ff2, self.w_ff2, self.b_ff2),
                              (ex.head1, self.w_h1, self.b_h1), (ex.head2, self.w_h2, self.b_h2)):
                lin.weight.copy_(w[e].T)
                lin.bias.copy_(b[e])
            ex.attn.in_proj_weight.copy_(self.w_qkv[e].T)
            ex.attn.in_proj_bias.copy_(self.b_qkv[e])
            for ln, g, b in ((ex.ln1, self.ln1_w, self.ln1_b), (ex.ln2, self.ln2_w, self.ln2_b)):
                ln.weight.copy_(g[e])
                ln.bias.copy_(b[e])
            out.append(ex)
        return out


class Expert(nn.Module):
    """One expert built from standard layers (the per-class model of the reference code)."""

    def __init__(self, config: ExpertConfig):
        super().__init__()
        c, d = config, config.dim
        mlp_dim, head_hidden = c.mlp_dim or 2 * d, c.head_hidden or d // 2
        self.proj = nn.Linear(c.in_dim, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, c.heads, batch_first=True)
        self.ff1, self.ff2 = nn.Linear(d, mlp_dim), nn.Linear(mlp_dim, d)
        self.head1, self.head2 = nn.Linear(d, head_hidden), nn.Linear(head_hidden, 1)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``[B, T, in_dim]``, ``[B, T]`` bool -> logits ``[B, T]`` (0 at padding)."""
        h = self.proj(x)
        a = self.ln1(h)
        h = h + self.drop(self.attn(a, a, a, key_padding_mask=~mask, need_weights=False)[0])
        h = h + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.ln2(h))))))
        return self.head2(F.gelu(self.head1(h))).squeeze(-1).masked_fill(~mask, 0.0)


def expert_video_mask(labels: Tensor, assign: Tensor, n_experts: int) -> Tensor:
    """``[E, B]`` bool: expert ``e`` trains on video ``b`` iff it is normal or assigned to ``e``.

    Args:
        labels: ``[B]`` video labels (0 normal, 1 abnormal).
        assign: ``[B]`` long expert of each abnormal video (its class or cluster); ignored
            for normal videos (use -1).
        n_experts: E.
    """
    B = labels.shape[0]
    labels = check_labels(labels, B)
    if tuple(assign.shape) != (B,):
        raise ValueError(f"assign has shape {tuple(assign.shape)} but the batch has B = {B} videos")
    bad = (labels == 1) & ((assign < 0) | (assign >= n_experts))
    if bad.any():
        raise ValueError(f"{int(bad.sum())} abnormal videos have no expert in [0, {n_experts}): "
                         f"assign = {assign[bad].tolist()[:5]}")
    experts = torch.arange(n_experts, device=assign.device)[:, None]
    return (labels == 0)[None, :] | (assign.to(experts.device)[None, :] == experts)


def expert_tgs_loss(scores: Tensor, labels: Tensor, assign: Tensor, mask: Tensor | None = None,
                    targets: Tensor | None = None, warmup: bool = False,
                    **target_kwargs) -> tuple[Tensor, Tensor]:
    """GS-MoE's L_TGS (Eq. (6)) for every expert on its own videos, in one batched computation.

    For expert ``e``: ``L_e = L_topk-norm + BCE(y, y_hat)`` where ``L_topk-norm`` (Eq. (2)) is
    the mean over the batch's normal videos of the mean ``-log(1 - s)`` of their top-k
    snippets, and the BCE the mean over the abnormal videos *of expert e* of the per-video
    mean BCE between the expert's scores and the TGS pseudo-labels ``y_hat`` (Eq. (3)-(5)).
    ``y_hat`` is ``targets`` when given (one ``[B, T]`` for all experts, e.g. splatted from
    the task encoder's scores), else splatted from each expert's own detached scores
    (:func:`vadbook.splatting.tgs_targets`). The ``E * B`` score rows are handled as one
    batch with the ``[E, B]`` mask of :func:`expert_video_mask`; an expert without abnormal
    video in the batch gets only its normal term. ``warmup=True`` replaces the BCE by the
    positive top-k term of Eq. (2) (full MIL).

    Args:
        scores: ``[B, T, E]`` expert scores in (0, 1).
        labels: ``[B]`` video labels.
        assign: ``[B]`` long expert of each abnormal video (-1 for normal ones).
        mask: ``[B, T]`` validity mask.
        targets: ``[B, T]`` pseudo-labels in [0, 1] shared by the experts, or None.
        warmup: MIL warm-up instead of the TGS term.
        **target_kwargs: passed to :func:`vadbook.splatting.tgs_targets` (own targets).

    Returns:
        ``(sum_e L_e, L)`` with ``L`` the ``[E]`` per-expert losses (detached). The sum (not
        the mean) keeps each expert's gradient equal to training it alone.
    """
    if scores.dim() != 3:
        raise ValueError(f"expert scores must be [B, T, E], got shape {tuple(scores.shape)}")
    B, T, E = scores.shape
    mask = check_mask(scores, mask)
    use = expert_video_mask(labels, assign, E)                                  # [E, B]
    labels = labels.float().to(scores.device)
    rows = scores.permute(2, 0, 1).reshape(E * B, T)                            # row e*B + b
    row_mask = mask.expand(E, B, T).reshape(E * B, T)
    row_labels = labels.expand(E, B).reshape(E * B)
    normal = (row_labels == 0).reshape(E, B).float()
    abnormal = (use & (labels == 1)[None, :]).float()
    norm_term = topk_bce(rows, torch.zeros_like(row_labels), row_mask, form="log_then_mean",
                         reduction="none").reshape(E, B)
    if warmup:
        pos = topk_bce(rows, torch.ones_like(row_labels), row_mask, form="log_then_mean", reduction="none")
    else:
        if targets is None:
            y_hat = tgs_targets(rows.detach(), row_mask, **target_kwargs)
        else:
            if tuple(targets.shape) != (B, T):
                raise ValueError(f"targets has shape {tuple(targets.shape)}, expected [B, T] = [{B}, {T}]")
            y_hat = targets.detach().to(rows.dtype).expand(E, B, T).reshape(E * B, T) * row_mask
        nll = F.binary_cross_entropy(rows, y_hat, reduction="none") * row_mask
        pos = nll.sum(dim=1) / row_mask.sum(dim=1)
    pos = pos.reshape(E, B)
    per_expert = ((norm_term * normal).sum(1) / normal.sum(1).clamp_min(1)
                  + (pos * abnormal).sum(1) / abnormal.sum(1).clamp_min(1))
    return per_expert.sum(), per_expert.detach()
