"""A text-aligned synthetic benchmark: a stand-in for CLIP features, for the vision-language chapters.

LEC-VAD, VadCLIP and MoME rely on one property of CLIP: an image feature of an explosion lies
close to the text embedding of "an explosion". No CLIP weights can be installed offline, so
this module builds that property into the synthetic benchmark instead:

1. every class description (:func:`vadbook.text.class_descriptions`) and a description of
   normal scenes are embedded by a real pretrained sentence encoder (MiniLM, 384-d,
   :mod:`vadbook.text`);
2. a fixed random map ``P`` with orthonormal rows (``[D, 384]`` for ``D <= 384``, orthonormal
   columns otherwise) carries them into the ``D``-d feature space: the *text features*
   ``t_c = P e_c / ||P e_c||`` play the role of CLIP's text encoder output;
3. each class signature of :mod:`vadbook.data.synthetic` keeps its part along normal activity
   (so subtle classes stay confusable with harmless bursts) and its share of the direction
   common to all anomalies, while its class-specific part is replaced by ``t_c`` (made
   orthogonal to the activity subspace and the common direction).

So an event's snippets carry the text embedding of its class, like CLIP features do, and
classes whose descriptions are close (fighting, assault, abuse) get close signatures. Normal
snippets do not carry the normal description (the generator has no such term); a real CLIP
feature of a street would. Everything else (lengths, events, noise, context, aftermath,
bursts) is the default generator with the same seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .presets import PRESETS, SCALES
from .synthetic import COMMON, _World, make_benchmark
from .video import Benchmark

__all__ = ["TextAlignedBenchmark", "make_text_aligned_benchmark", "text_projection", "text_signatures"]


@dataclass(repr=False)
class TextAlignedBenchmark(Benchmark):
    """A :class:`Benchmark` whose events carry text embeddings, plus its "CLIP text encoder".

    Attributes (beyond :class:`Benchmark`):
        descriptions: ``{class: sentence}`` in class order.
        normal_description: the sentence of class 0 (normal).
        projection: ``[D, 384]`` map from MiniLM space into feature space.
        text_features: ``[C + 1, D]`` unit-norm text features, row 0 = normal, rows 1..C the
            classes in ``classes`` order (what LEC-VAD calls ``F_text``).
    """

    descriptions: dict = field(default_factory=dict)
    normal_description: str = ""
    projection: np.ndarray | None = None
    text_features: np.ndarray | None = None

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """The stand-in CLIP text encoder: MiniLM, then ``P``, then L2 normalisation. ``[N, D]``."""
        from ..text import encode_texts
        return _unit(encode_texts(list(texts)) @ self.projection.T)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)).astype(np.float32)


def text_projection(dim: int, text_dim: int = 384, seed: int = 0) -> np.ndarray:
    """A random ``[dim, text_dim]`` map with orthonormal rows (or columns when ``dim > text_dim``)."""
    rng = np.random.default_rng([seed, 384])
    q, _ = np.linalg.qr(rng.standard_normal((max(dim, text_dim), min(dim, text_dim))))
    return q.T if dim <= text_dim else q   # [dim, text_dim]


def text_signatures(world_signature: np.ndarray, activity: np.ndarray, text_dirs: np.ndarray,
                    common_share: float = COMMON) -> np.ndarray:
    """Class signatures whose class-specific part is the class's text direction.

    Args:
        world_signature: ``[C, D]`` default unit signatures.
        activity: ``[K, D]`` orthonormal normal-activity directions.
        text_dirs: ``[C, D]`` text features of the classes in feature space.
        common_share: share of the squared norm along the common anomaly direction.

    Returns:
        ``[C, D]`` unit signatures: the default activity part ``a_c`` is kept; the rest
        (norm ``r_c = sqrt(1 - ||a_c||^2)``) becomes ``r_c * (sqrt(q_c) u + sqrt(1 - q_c) t_c')``
        with ``u`` the (normalised) mean non-activity part of the default signatures (the
        direction all anomalies share), ``q_c = common_share / r_c^2`` and ``t_c'`` the text
        direction made orthogonal to the activity subspace and ``u``.
    """
    act_part = world_signature @ activity.T @ activity                       # [C, D]
    rest = world_signature - act_part
    r = np.linalg.norm(rest, axis=1, keepdims=True)
    u = rest.mean(axis=0)
    u /= np.linalg.norm(u)
    t = text_dirs - text_dirs @ activity.T @ activity
    t = t - (t @ u)[:, None] * u
    t /= np.linalg.norm(t, axis=1, keepdims=True).clip(1e-12)
    q = np.clip(common_share / np.maximum(r**2, 1e-12), 0.0, 1.0)
    sig = act_part + r * (np.sqrt(q) * u + np.sqrt(1 - q) * t)
    return sig / np.linalg.norm(sig, axis=1, keepdims=True)


def make_text_aligned_benchmark(preset: str = "ucf", scale: str | None = None, seed: int = 0,
                                dim: int | None = None, descriptions: dict | None = None
                                ) -> TextAlignedBenchmark:
    """The synthetic benchmark of :func:`vadbook.data.make_benchmark` with text-aligned events.

    Args:
        preset, scale, seed, dim: as :func:`~vadbook.data.make_benchmark` (same videos,
            events and noise for the same seed; only the class signatures differ).
        descriptions: ``{class: sentence}`` overriding :func:`vadbook.text.class_descriptions`.

    Returns:
        A :class:`TextAlignedBenchmark` named ``text-aligned-<preset>-<scale>-seed<seed>``.
    """
    import os

    from ..text import NORMAL_DESCRIPTION, class_descriptions, encode_texts

    if scale is None:
        scale = os.environ.get("VADBOOK_SCALE", "small")
    if preset not in PRESETS or scale not in SCALES:
        raise ValueError(f"unknown preset/scale {preset!r}/{scale!r}; expected {sorted(PRESETS)} / {sorted(SCALES)}")
    p = PRESETS[preset]
    dim = SCALES[scale].dim if dim is None else int(dim)
    desc = dict(class_descriptions(preset))
    if descriptions:
        unknown = set(descriptions) - set(desc)
        if unknown:
            raise ValueError(f"descriptions for unknown classes {sorted(unknown)}")
        desc.update(descriptions)
    emb = encode_texts([NORMAL_DESCRIPTION] + list(desc.values()))           # [C + 1, 384]
    proj = text_projection(dim, emb.shape[1], seed)
    text_features = _unit(emb @ proj.T)                                        # [C + 1, D]
    # the same world make_benchmark draws first from its generator
    world = _World(p, dim, np.random.default_rng([seed, 7]))
    sig = text_signatures(world.signature, world.activity, text_features[1:].astype(np.float64))
    bench = make_benchmark(preset, scale, seed, dim=dim, signatures=sig)
    base = {f.name: getattr(bench, f.name) for f in fields(Benchmark)}
    base["name"] = f"text-aligned-{preset}-{scale}-seed{seed}" + ("" if dim == SCALES[scale].dim else f"-d{dim}")
    return TextAlignedBenchmark(**base, descriptions=desc, normal_description=NORMAL_DESCRIPTION,
                                projection=proj.astype(np.float32), text_features=text_features)
