"""MoME: joint learning of general and diverse patterns with mixtures of memory experts.

Sun et al. (only the supplementary is available; section letters and equation numbers are
its own). The model, in :class:`MoME`:

1. **LGT-Adapter** (A.1 Eq. (1)-(3)): :class:`vadbook.nn.lgt.LGTBlock`, a windowed local
   transformer plus a GCN over the similarity and the distance adjacency.
2. **Mixtures of memory experts** (A.2 Eq. (4)-(6), :mod:`vadbook.nn.memory_experts`): a
   mixture of normal experts (MoNE, latent router only) and a mixture of anomaly experts
   (MoAE: ``round(explicit_ratio * E)`` explicit experts routed by the anomaly prototypes,
   the rest implicit, routed by a latent router). Each snippet reads the memory of its top-1
   expert of each mixture.
3. **Fusion and detector** (A.3): the two augmented features are fused with memory-similarity
   weights ``w_a = s_a / (s_a + s_n)`` (``s`` = each mixture's UR-DMU temporal attention) and a
   two-layer MLP (ReLU, Sigmoid) scores ``[h ; w_a aug_a + (1 - w_a) aug_n]``.

Readings chosen (the supplementary describes inference only): the fusion is the same in
training and inference, so the detector never sees which mixture a video was meant for (no
label leak, no train/test mismatch). ``experts`` is the size of *each* mixture. The "external
memory" of section B (``M_ext = 60``, write rate ``alpha = 1e-3``) is not described anywhere
we can read and is left out: every expert holds one gradient-trained memory of ``M_in`` slots.
Prototypes are encoded with :mod:`vadbook.text` (MiniLM, 384-d) instead of CLIP's text encoder.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from ..losses.mil import check_mask, topk_bce
from ..losses.moe import (UCF_WEIGHTS, MoMEWeights, allocation_overlap_loss, load_balance_loss,
                          memory_diversity_loss, memory_loss, mome_objective, router_z_loss)
from .lgt import LGTBlock
from .memory_experts import MemoryMixture

__all__ = ["ANOMALY_PROTOTYPES", "PROTOTYPE_CLASSES", "anomaly_prototypes", "MoMEConfig", "MoME", "LGTDetector",
           "route_videos"]

# Short descriptions of anomalous situations written for this book, three per UCF-Crime class
# and five class-agnostic ones (MoME uses ~300 fine-grained prototypes of both kinds).
_PROTOTYPES = {
    "Abuse": ("a man slaps and kicks a child", "a caregiver pushes an elderly person to the floor",
              "a dog is beaten by its owner"),
    "Arrest": ("police officers pin a man to the ground", "an officer handcuffs a suspect next to a police car",
               "a person is escorted away by police"),
    "Arson": ("a man pours fuel and lights a fire", "flames spread through a parked car",
              "a house is set on fire at night"),
    "Assault": ("a person punches a stranger in the street", "a man attacks a woman and knocks her down",
                "a group beats a person lying on the ground"),
    "Burglary": ("someone breaks a window and climbs into a house", "a thief forces open a shop door at night",
                 "a masked person searches drawers in an empty office"),
    "Explosion": ("a loud blast throws debris across the street", "a gas tank explodes into a fireball",
                  "thick smoke rises after an explosion"),
    "Fighting": ("two men wrestle and exchange punches", "a brawl breaks out among several people",
                 "students fight in a school corridor"),
    "RoadAccidents": ("a car crashes into another car at an intersection", "a motorbike hits a pedestrian",
                      "a truck overturns on the highway"),
    "Robbery": ("an armed man threatens a cashier", "robbers point guns at customers in a bank",
                "a person grabs a bag and runs away"),
    "Shooting": ("a gunman fires shots in a parking lot", "people run away from gunfire",
                 "a person is shot at a gas station"),
    "Shoplifting": ("a shopper hides goods under a jacket",
                    "a customer slips items into a bag and leaves without paying",
                    "a woman takes clothes from a rack and walks out"),
    "Stealing": ("a thief steals a bicycle from a rack", "a man drives away in a car that is not his",
                 "a pickpocket takes a wallet from a pocket"),
    "Vandalism": ("someone sprays graffiti on a wall", "a person smashes a car windscreen with a bat",
                  "youths kick over bins and break a bus stop"),
    None: ("several people began to push each other, causing panic in the crowd",
           "a person suddenly falls to the ground", "people suddenly run in all directions",
           "an object is thrown violently at someone", "someone behaves aggressively towards others"),
}
ANOMALY_PROTOTYPES = tuple(t for texts in _PROTOTYPES.values() for t in texts)
PROTOTYPE_CLASSES = tuple(c for c, texts in _PROTOTYPES.items() for _ in texts)  # None: class-agnostic


def anomaly_prototypes(texts: tuple[str, ...] | list[str] = ANOMALY_PROTOTYPES) -> torch.Tensor:
    """Prototype embeddings ``[P, 384]`` from the sentence encoder of :mod:`vadbook.text`."""
    from ..text import encode_texts
    return torch.from_numpy(np.asarray(encode_texts(list(texts)), dtype=np.float32))


@dataclass
class MoMEConfig:
    """Sizes and loss weights of :class:`MoME` (defaults: paper, CLIP ViT-B/16 input, UCF)."""

    in_dim: int = 512
    dim: int = 512
    window: int = 8
    heads: int = 4
    lgt_depth: int = 1
    dropout: float = 0.1
    sim_threshold: float | None = 0.7
    distance_sigma: float = 1.0
    experts: int = 24            # per mixture (MoNE and MoAE each)
    explicit_ratio: float = 0.5  # share of MoAE's experts routed by prototypes
    slots: int = 60              # M_in
    top_k: int = 1
    tau: float = 3e-3
    head_hidden: int = 128
    weights: MoMEWeights = field(default_factory=lambda: UCF_WEIGHTS)
    sparse: bool = True

    @property
    def explicit(self) -> int:
        """Explicit anomaly experts: ``round(explicit_ratio * experts)``."""
        if not 0.0 <= self.explicit_ratio <= 1.0:
            raise ValueError(f"explicit_ratio must be in [0, 1], got {self.explicit_ratio}")
        return int(round(self.explicit_ratio * self.experts))

    @classmethod
    def small(cls, in_dim: int = 128, **overrides) -> "MoMEConfig":
        """CPU scale for the book's small runs: ``d = 128``."""
        return replace(cls(in_dim=in_dim, dim=128), **overrides)


def _embed(in_dim: int, dim: int) -> nn.Module:
    return nn.Identity() if in_dim == dim else nn.Linear(in_dim, dim)


def _detector(in_dim: int, hidden: int) -> nn.Module:
    """The two-layer MLP detector of MoME A.3: Linear, ReLU, Linear, Sigmoid."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid())


class MoME(nn.Module):
    """LGT-Adapter -> MoNE and MoAE -> fused memory read -> MLP detector.

    Args:
        config: sizes and weights (default :class:`MoMEConfig`).
        prototypes: ``[P, D_text]`` prototype embeddings; None encodes
            :data:`ANOMALY_PROTOTYPES` (only needed when there are explicit experts).
    """

    def __init__(self, config: MoMEConfig | None = None, prototypes: torch.Tensor | None = None):
        super().__init__()
        c = self.config = config or MoMEConfig()
        if c.explicit and prototypes is None:
            prototypes = anomaly_prototypes()
        self.embed = _embed(c.in_dim, c.dim)
        self.lgt = LGTBlock(c.dim, window=c.window, heads=c.heads, depth=c.lgt_depth, sim_threshold=c.sim_threshold,
                            use_distance=True, distance_sigma=c.distance_sigma, dropout=c.dropout)
        self.normal = MemoryMixture(c.dim, c.experts, c.slots, c.top_k, sparse=c.sparse)
        self.anomaly = MemoryMixture(c.dim, c.experts, c.slots, c.top_k, explicit=c.explicit,
                                     prototypes=prototypes if c.explicit else None, tau=c.tau, sparse=c.sparse)
        self.head = _detector(2 * c.dim, c.head_hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Score snippets.

        Args:
            x: ``[B, T, in_dim]``; mask: ``[B, T]`` bool (None: all valid); labels: unused
                (the same fusion runs in training and inference).

        Returns:
            Dict with ``scores`` ``[B, T]``, ``features`` ``[B, T, dim]`` (LGT output),
            ``anomaly_att`` / ``normal_att`` ``[B, T]`` (memory similarities),
            ``fusion_weight`` ``[B, T]`` (``w_a``), and each mixture's routing outputs under
            ``anomaly_*`` / ``normal_*`` (``gates``, ``index``, ``weights``, ``router_logits``,
            ``prototype_probs``; see :meth:`MemoryMixture.forward`).
        """
        c = self.config
        if x.dim() != 3 or x.shape[-1] != c.in_dim:
            raise ValueError(f"MoME expects x of shape [B, T, {c.in_dim}], got {tuple(x.shape)}")
        mask = check_mask(x, mask, "x")
        h = self.lgt(self.embed(x * mask[..., None]), mask)
        a, n = self.anomaly(h, mask), self.normal(h, mask)
        s_a, s_n = a["temporal_att"], n["temporal_att"]
        w_a = s_a / (s_a + s_n).clamp_min(1e-6)
        fused = w_a[..., None] * a["augment"] + (1 - w_a)[..., None] * n["augment"]
        out = {"scores": self.head(torch.cat([h, fused], dim=-1)).squeeze(-1), "features": h,
               "anomaly_att": s_a, "normal_att": s_n, "fusion_weight": w_a}
        out.update({f"anomaly_{k}": v for k, v in a.items() if k not in ("temporal_att",)})
        out.update({f"normal_{k}": v for k, v in n.items() if k not in ("temporal_att",)})
        return out

    def loss(self, out: dict, batch: dict, score_loss=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MoME Eq. (7) (see :mod:`vadbook.losses.moe`).

        Args:
            out: :meth:`forward` output.
            batch: dict with ``label`` ``[B]`` and ``mask`` ``[B, T]``.
            score_loss: ``f(scores, batch)`` replacing ``L_cls`` (default top-k BCE).

        Returns:
            ``(total, parts)`` with detached parts ``cls``, ``memory`` (and its four terms),
            ``balance``, ``reg``, ``div``, ``router``, ``total``.
        """
        scores = out["scores"]
        mask = check_mask(scores, batch.get("mask"))
        cls = score_loss(scores, batch) if score_loss is not None else topk_bce(scores, batch["label"], mask)
        parts = {"cls": cls, **memory_loss(out["anomaly_att"], out["normal_att"], batch["label"], mask)}
        zero = scores.new_zeros(())
        parts["balance"] = sum(load_balance_loss(out[f"{m}_gates"], out[f"{m}_index"], mask)
                               for m in ("anomaly", "normal"))
        router = self.anomaly.prototype_router
        parts["reg"] = allocation_overlap_loss(router.allocation()) if router is not None else zero
        parts["div"] = (memory_diversity_loss(self.anomaly.experts.memories)
                        + memory_diversity_loss(self.normal.experts.memories))
        parts["router"] = (router_z_loss(out["anomaly_router_logits"], mask)
                           + router_z_loss(out["normal_router_logits"], mask))
        total = mome_objective(parts, self.config.weights)
        parts["total"] = total
        return total, {k: v.detach() for k, v in parts.items()}


class LGTDetector(nn.Module):
    """The LGT baseline: LGT-Adapter + the same two-layer MLP detector, top-k MIL BCE.

    Args:
        config: a :class:`MoMEConfig` (only the input, LGT and head sizes are used).
    """

    def __init__(self, config: MoMEConfig | None = None):
        super().__init__()
        c = self.config = config or MoMEConfig()
        self.embed = _embed(c.in_dim, c.dim)
        self.lgt = LGTBlock(c.dim, window=c.window, heads=c.heads, depth=c.lgt_depth, sim_threshold=c.sim_threshold,
                            use_distance=True, distance_sigma=c.distance_sigma, dropout=c.dropout)
        self.head = _detector(c.dim, c.head_hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``x`` ``[B, T, in_dim]`` -> ``scores`` ``[B, T]`` and ``features`` ``[B, T, dim]``."""
        c = self.config
        if x.dim() != 3 or x.shape[-1] != c.in_dim:
            raise ValueError(f"LGTDetector expects x of shape [B, T, {c.in_dim}], got {tuple(x.shape)}")
        mask = check_mask(x, mask, "x")
        h = self.lgt(self.embed(x * mask[..., None]), mask)
        return {"scores": self.head(h).squeeze(-1), "features": h}

    def loss(self, out: dict, batch: dict, score_loss=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Top-k MIL BCE (or ``score_loss``)."""
        scores = out["scores"]
        mask = check_mask(scores, batch.get("mask"))
        cls = score_loss(scores, batch) if score_loss is not None else topk_bce(scores, batch["label"], mask)
        return cls, {"cls": cls.detach(), "total": cls.detach()}


@torch.no_grad()
def route_videos(model: MoME, videos, batch_size: int = 32) -> dict[str, list[np.ndarray]]:
    """Per video: the top-1 expert of each mixture and the nearest prototype of every snippet.

    Returns:
        Dict of lists (one ``[T]`` array per video, in order): ``anomaly_expert``,
        ``normal_expert`` (int), ``prototype`` (argmax of the prototype probabilities, -1
        without explicit experts), ``anomaly_att``, ``normal_att``, ``fusion_weight`` and
        ``scores`` (float).
    """
    from ..data.batching import pad_batch
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    keys = ("anomaly_expert", "normal_expert", "prototype", "anomaly_att", "normal_att", "fusion_weight", "scores")
    result: dict[str, list] = {k: [] for k in keys}
    for s in range(0, len(videos), batch_size):
        chunk = videos[s:s + batch_size]
        x, mask = pad_batch(chunk, dev)
        out = model(x, mask)
        proto = (out["anomaly_prototype_probs"].argmax(-1) if "anomaly_prototype_probs" in out
                 else torch.full_like(mask, -1, dtype=torch.long))
        arrays = {"anomaly_expert": out["anomaly_index"][..., 0], "normal_expert": out["normal_index"][..., 0],
                  "prototype": proto, **{k: out[k] for k in keys[3:]}}
        for k in keys:
            a = arrays[k].cpu().numpy()
            result[k].extend(a[j, :v.T] for j, v in enumerate(chunk))
    model.train(was_training)
    return result
