"""LEC-VAD (Wang & Chen, ICML 2025): dual heads, text cross-attention, memory prototypes, GMM masks.

Architecture (LEC-VAD Sec. 3.1-3.3), on snippet features ``x`` ``[B, T, D]``:

* ``F_video = LGT(x)``: local window transformer + similarity GCN (Eq. (1), :class:`LGTBlock`).
* Category-agnostic head ``s^b = softmax(FC(F_video))`` ``[B, T, 2]`` (Eq. (2)-(3)).
* Category-aware head ``s^m = softmax(FC(F_video))`` ``[B, T, C + 1]``, column 0 = normal.
* Text cross-attention (Eq. (4)): the ``C + 1`` text features query the video,
  ``F_tv = softmax(F_text W_q (F_video W_k)^T / sqrt(d)) F_video W_v`` ``[B, C + 1, d]``.
* Memory bank (Sec. 3.2, Eq. (11)): prototypes ``M`` ``[C + 1, d]`` initialised with the text
  features; ``m`` self-attention blocks on ``[F_tv ; M]``, the first ``C + 1`` rows are
  ``F_aug``; ``F_ctg = F_tv + F_aug``; in training ``M <- eta M + (1 - eta) mean_b F_aug``.
* ``s^tv = norm(F_video) norm(F_ctg)^T`` (Eq. (5)) and ``s^aware = s^m + s^tv``.
* Gaussian mixture masks (Eq. (12)): a shared FC on ``[F_aug[c] ; F_video[t] ; t/T]`` predicts a
  centre ``mu_c^t`` and width ``sigma_c^t`` per snippet and class;
  ``s_gmm(t) = sum_c s^m[t, c] exp(-beta (t/T - mu_c^t)^2 / (sigma_c^t)^2)``.
* Coarse score (Sec. 3.4): ``(1 - s^m[t, 0] + s^b[t, 1]) / 2``.

Readings chosen where the paper is ambiguous (tested in tests/test_lecvad.py):

1. ``s^m`` has ``C + 1`` columns (Sec. 3.1 writes ``C`` but indexes column 0 as normal and
   sums Eq. (12) and Eq. (7) over ``c = 0..C``).
2. Eq. (12) sums over the ``C`` *anomaly* components only ("encoding multiple anomaly
   categories as GMM components", "alpha_c^t indicates the probability of each abnormal
   event"): with the normal column included, ``s_gmm`` would be ~1 everywhere.
3. ``mu_c^t = sigmoid(o)`` is an absolute centre in ``(0, 1)`` (units of the video length)
   and ``sigma_c^t = sigmoid(o')`` (floored at 1e-3), as printed. ``F_m`` as described
   carries no position, so the FC also sees the snippet's normalised position ``t / T``
   (VadCLIP, on which LEC-VAD builds, adds position embeddings to the snippet features).
   We tried a relative centre ``t/T + tanh(o)`` first: it cannot draw a bump over an event
   (neighbours with equal features get equal offsets), and ``s_gmm`` collapsed to 0 in
   training, turning ``L_gmm`` into a sparsity penalty on ``s^b``.
4. Eq. (12) evaluates each snippet's mixture at its own position only (``G^t(t)``), so only
   the diagonal is computed, ``O(B T C)`` (:func:`gmm_scores`); :func:`gmm_masks` builds
   the full ``[B, T, T]`` masks ``G^t(j)`` for figures and the test that the two agree.
5. The FC on the concatenation ``[F_aug[c] ; F_video[t] ; t/T]`` is split into three FCs
   whose outputs are broadcast-added, which is the same linear map without the
   ``[B, T, C, 2d + 1]`` tensor (tested against the concatenation).
6. ``t`` runs over ``1..T_b`` with ``T_b`` the valid length of video ``b``.

Losses are in :mod:`vadbook.nn.lecvad_losses`, instance inference in
:mod:`vadbook.detection_infer`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.mil import check_mask
from ..splatting import mixture
from .lecvad_losses import video_class_probs
from .lgt import LGTBlock

__all__ = ["LECVADConfig", "LECVAD", "gmm_scores", "gmm_masks", "gmm_positions"]


@dataclass
class LECVADConfig:
    """Sizes and loss weights of :class:`LECVAD` (paper values where the paper gives them).

    Attributes:
        in_dim: feature size ``D``.
        n_classes: number of anomaly classes ``C`` (the model adds the normal class 0).
        window, heads, lgt_depth, sim_threshold, use_distance, dropout: the LGT block.
        memory_blocks: ``m`` self-attention blocks over ``[F_tv ; M]`` (4).
        momentum: ``eta`` of Eq. (11) (0.99).
        beta: variance control of Eq. (12) (0.7).
        lam: ``lambda``, weight of ``L_gmm`` in Eq. (10) (0.3).
        gamma: weight of ``L_reg`` in Eq. (10) (1e-4).
        temperature: softmax temperature over classes of Eq. (6)-(7) (VadCLIP's 0.07).
        use_text: the cross-modal branch (``s^tv``); off: ``s^aware = s^m`` (Table 5 "VOB").
        use_memory: the prototype memory bank (Table 7 "PMB").
        hidden: model width ``d``; None: ``d = D``. Otherwise one linear map (no bias),
            shared by the video and the text features so that their alignment survives,
            takes both to ``d`` first (a CPU economy of the small scale, not in the paper).
    """

    in_dim: int
    n_classes: int
    window: int = 8
    heads: int = 4
    lgt_depth: int = 1
    sim_threshold: float | None = 0.7
    use_distance: bool = False
    dropout: float = 0.1
    memory_blocks: int = 4
    momentum: float = 0.99
    beta: float = 0.7
    lam: float = 0.3
    gamma: float = 1e-4
    temperature: float = 0.07
    use_text: bool = True
    use_memory: bool = True
    hidden: int | None = None


def gmm_positions(mask: torch.Tensor) -> torch.Tensor:
    """Normalised positions ``t / T_b`` for ``t = 1..T_b`` (0 at padding), ``[B, T]``."""
    T_b = mask.sum(dim=1, keepdim=True).clamp_min(1).to(torch.float32)
    return (mask.cumsum(dim=1).to(torch.float32) / T_b) * mask


def gmm_scores(mu: torch.Tensor, sigma: torch.Tensor, alpha: torch.Tensor, mask: torch.Tensor,
               beta: float = 0.7) -> torch.Tensor:
    """``s_gmm(t) = G^t(t)`` of LEC-VAD Eq. (12), the diagonal only: ``[B, T]`` in ``O(B T C)``.

    Args:
        mu, sigma: ``[B, T, C]`` centre and width of component ``c`` of snippet ``t``'s
            mixture, in units of the video length.
        alpha: ``[B, T, C]`` mixture weights ``s^m[t, c]`` (anomaly classes).
        mask: ``[B, T]`` bool validity mask; 0 at padding.
        beta: ``beta`` of Eq. (12).
    """
    pos = gmm_positions(mask).to(mu.dtype)
    s = mixture(pos[..., None], mu, sigma / math.sqrt(2 * beta), weights=alpha)[..., 0]
    return s * mask


def gmm_masks(mu: torch.Tensor, sigma: torch.Tensor, alpha: torch.Tensor, mask: torch.Tensor,
              beta: float = 0.7, per_class: bool = False) -> torch.Tensor:
    """The full Gaussian mixture masks ``G^t(j)`` of Eq. (12), ``[B, T(t), T(j)]``, ``O(B T^2 C)``.

    ``per_class=True`` returns the weighted components ``alpha_c^t G_c^t(j)``,
    ``[B, T, T, C]``. Rows and columns at padded snippets are 0. For figures and tests;
    training uses the diagonal :func:`gmm_scores`.
    """
    pos = gmm_positions(mask).to(mu.dtype)                                   # [B, T]
    d = pos[:, None, :, None] - mu[:, :, None, :]                            # [B, t, j, C]
    comp = alpha[:, :, None, :] * torch.exp(-beta * d.pow(2) / sigma[:, :, None, :].pow(2))
    valid = (mask[:, :, None] & mask[:, None, :]).to(comp.dtype)
    if per_class:
        return comp * valid[..., None]
    return comp.sum(dim=-1) * valid


class LECVAD(nn.Module):
    """LEC-VAD on snippet features with fixed text features ``F_text``.

    Args:
        cfg: :class:`LECVADConfig`.
        text_features: ``[C + 1, D_text]`` class text features, row 0 = normal (e.g.
            ``TextAlignedBenchmark.text_features``); mapped to ``in_dim`` by a learned
            linear layer when ``D_text != in_dim``.
    """

    def __init__(self, cfg: LECVADConfig, text_features: torch.Tensor):
        super().__init__()
        text = torch.as_tensor(text_features, dtype=torch.float32)
        C1, d = cfg.n_classes + 1, cfg.hidden or cfg.in_dim
        if text.dim() != 2 or text.shape[0] != C1:
            raise ValueError(f"text_features must be [C + 1, D_text] = [{C1}, *] (normal first), "
                             f"got {tuple(text.shape)}")
        self.cfg = cfg
        self.register_buffer("text", text)
        self.embed = nn.Identity() if d == cfg.in_dim else nn.Linear(cfg.in_dim, d, bias=False)
        adapt = nn.Identity() if text.shape[1] == cfg.in_dim else nn.Linear(text.shape[1], cfg.in_dim)
        self.text_proj = nn.Sequential(adapt, self.embed)
        self.temporal = LGTBlock(d, cfg.window, cfg.heads, cfg.lgt_depth, cfg.sim_threshold,
                                 cfg.use_distance, dropout=cfg.dropout)
        self.head_b = nn.Linear(d, 2)
        self.head_m = nn.Linear(d, C1)
        self.w_q, self.w_k, self.w_v = (nn.Linear(d, d, bias=False) for _ in range(3))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, cfg.heads, 2 * d, cfg.dropout, batch_first=True, norm_first=True)
            for _ in range(cfg.memory_blocks))
        with torch.no_grad():
            self.register_buffer("memory", self.text_proj(text).detach().clone())
        self.gmm_video = nn.Linear(d, 2)
        self.gmm_pos = nn.Linear(1, 2, bias=False)
        self.gmm_text = nn.Linear(d, 2, bias=False)

    def text_branch(self, feats: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. (4) and Sec. 3.2: ``(F_ctg, F_aug)``, each ``[B, C + 1, d]``."""
        B, T, d = feats.shape
        text = self.text_proj(self.text)                                     # [C+1, d]
        q = self.w_q(text)
        att = (q[None] @ self.w_k(feats).transpose(1, 2)) / math.sqrt(d)    # [B, C+1, T]
        att = att.masked_fill(~mask[:, None, :], float("-inf")).softmax(dim=-1)
        f_tv = att @ self.w_v(feats)                                         # [B, C+1, d]
        if not self.cfg.use_memory:
            return f_tv, f_tv
        C1 = text.shape[0]
        cte = torch.cat([f_tv, self.memory[None].expand(B, -1, -1)], dim=1)  # [B, 2C+2, d]
        for blk in self.blocks:
            cte = blk(cte)
        f_aug = cte[:, :C1]
        if self.training:  # Eq. (11), momentum update of the prototypes
            with torch.no_grad():
                eta = self.cfg.momentum
                self.memory.mul_(eta).add_((1 - eta) * f_aug.detach().mean(dim=0))
        return f_tv + f_aug, f_aug

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """All of LEC-VAD's per-snippet quantities.

        Args:
            x: ``[B, T, D]`` features; mask: ``[B, T]`` bool; labels: unused (trainer API).

        Returns:
            dict with ``scores`` ``[B, T]`` (coarse score, Sec. 3.4), ``s_b`` ``[B, T, 2]``,
            ``s_m``, ``s_tv``, ``s_aware`` ``[B, T, C + 1]``, ``p_m`` ``[B, C + 1]`` (Eq. (6)
            with a softmax over classes), ``mu``, ``sigma`` ``[B, T, C]``,
            ``s_gmm`` ``[B, T]``, ``features`` ``[B, T, d]``, ``mask``.
        """
        cfg = self.cfg
        if x.dim() != 3 or x.shape[-1] != cfg.in_dim:
            raise ValueError(f"LECVAD expects x of shape [B, T, {cfg.in_dim}], got {tuple(x.shape)}")
        mask = check_mask(x, mask, "x")
        feats = self.temporal(self.embed(x), mask)                           # F_video
        s_b = self.head_b(feats).softmax(dim=-1)
        s_m = self.head_m(feats).softmax(dim=-1)
        if cfg.use_text:
            f_ctg, f_aug = self.text_branch(feats, mask)
            s_tv = F.normalize(feats, dim=-1) @ F.normalize(f_ctg, dim=-1).transpose(1, 2)
        else:
            f_aug = self.text_proj(self.text)[None].expand(x.shape[0], -1, -1)
            s_tv = torch.zeros_like(s_m)
        # Eq. (12): shared FC on [F_aug[c]; F_video[t]; t/T] -> (centre, width) of component c at t
        pos = gmm_positions(mask)
        o = ((self.gmm_video(feats) + self.gmm_pos(pos[..., None]))[:, :, None, :]
             + self.gmm_text(f_aug[:, 1:])[:, None, :, :])
        mu = torch.sigmoid(o[..., 0])
        sigma = torch.sigmoid(o[..., 1]).clamp_min(1e-3)
        s_gmm = gmm_scores(mu, sigma, s_m[..., 1:], mask, cfg.beta)
        scores = 0.5 * (1 - s_m[..., 0] + s_b[..., 1])
        s_aware = s_m + s_tv
        p_m = video_class_probs(s_aware, mask, cfg.temperature)
        return {"scores": scores, "s_b": s_b, "s_m": s_m, "s_tv": s_tv, "s_aware": s_aware, "p_m": p_m,
                "mu": mu, "sigma": sigma, "s_gmm": s_gmm, "features": feats, "mask": mask}

    def loss(self, out: dict, batch: dict, score_loss=None) -> tuple[torch.Tensor, dict]:
        """Eq. (10); see :func:`vadbook.nn.lecvad_losses.lecvad_loss`."""
        from .lecvad_losses import lecvad_loss
        return lecvad_loss(out, batch, self.cfg, score_loss)
