"""The synthetic WSVAD benchmark: snippet features with the structure of real I3D features.

Real UCF-Crime / XD-Violence features cannot be shipped, so every chapter runs on videos made
here. A video's snippet features are a sum of parts, each standing for one phenomenon the
papers are about (section "The synthetic benchmark" of the book explains each one)::

    x_t = mu + scene_t + activity_t + sum_e o_e * pi_e(t) * g * salience_c * u_c + noise_t

- ``mu``: the mean feature; together with the ``scene`` term it makes snippets of one video
  very similar (static surveillance cameras, UCF-like). XD-like videos cut between shots, so
  their scene term changes along the video (moving cameras).
- ``activity``: slowly varying motion of people and cars, plus harmless *bursts* in every
  video, normal ones included, along the same directions that subtle classes share.
- events: class signature ``u_c`` (a unit vector; ``normal_like`` of it lies in the activity
  subspace), scaled by the class ``salience`` and the event severity ``o_e``; ``pi_e(t)`` is a
  graded onset / plateau / offset profile with fluctuations, so events have peaks and weak
  edges. Training abnormal videos hold several events, the extra ones weaker.
- context: an abnormal video's whole scene leans slightly towards its class (a shop, a
  street at night), so MIL can separate videos by context rather than events.
- aftermath: after an event its signature decays over a tail that is *not* annotated as
  anomalous (the context bias GlanceVAD describes), so scores bleed past event ends.
- ``noise``: snippet-level noise that temporal context can average out.

Lengths, events per video, per-class durations and class frequencies follow
``reference/dataset-stats.md`` (see :mod:`vadbook.data.presets`).
"""
from __future__ import annotations

import math
import os

import numpy as np

from .presets import PRESETS, SCALES, ClassSpec, Preset, Scale
from .video import Benchmark, Video

# Feature-model amplitudes (per dimension, in units of the noise std). Calibrated so that the
# classic baselines land near their published UCF-Crime numbers (see the WSVAD chapter).
SIGNAL = 6.0          # g: signature strength of a salience-1 event at full severity
MEAN_NORM = 2.0       # per-dimension scale of the common mean
SCENE_DIM = 16        # scenes vary along a low-dimensional subspace (layout, lighting)
SCENE_STD = 1.0       # std of a video's scene along each scene direction
ACTIVITY_DIM = 8      # dimension of the normal-activity subspace
ACTIVITY_STD = 0.5    # std of the slow activity process (per activity direction)
BURST_RATE = 1 / 60   # harmless bursts per snippet
NOISE_STD = 1.0
CONTEXT = 0.5         # mean strength of the anomaly-related scene context
AFTERMATH = 0.5       # strength of the un-annotated aftermath of an event
COMMON = 0.4          # share of a class signature common to all anomalies
SIGNATURE_JITTER = 0.25  # per-video variation of a class signature


def make_benchmark(preset: str = "ucf", scale: str | None = None, seed: int = 0,
                   dim: int | None = None, signatures: np.ndarray | None = None) -> Benchmark:
    """Generate the synthetic benchmark.

    Args:
        preset: ``"ucf"`` (13 classes, single-label, static cameras) or ``"xd"`` (6 classes,
            multi-label, moving cameras, more and shorter events).
        scale: ``"small"`` (CPU chapters: 240 train / 60 val / 120 test videos, 128-d) or
            ``"paper"`` (the real split sizes, 1024-d, plus a validation split); ``None``
            reads ``$VADBOOK_SCALE`` (default ``"small"``), the one switch of every chapter.
        seed: everything (class signatures, videos, glances) is a function of it.
        dim: override the feature dimension of the scale.
        signatures: ``[C, D]`` class signatures replacing the generated ones (rows are
            normalised to unit length); every random draw stays the same, so ``None`` gives
            the default benchmark (used by :mod:`vadbook.data.text_aligned`).

    Returns:
        A :class:`Benchmark`; abnormal training videos carry one glance per event.
    """
    p, s, dim = _check_args(preset, scale, seed, dim)
    rng = np.random.default_rng([seed, 7])
    world = _World(p, dim, rng, signatures)
    n_train = p.n_train if s.n_train is None else s.n_train
    n_test = p.n_test if s.n_test is None else s.n_test
    names = _NameCounter(p)
    train = _make_split(world, s, "train", n_train, p.n_train_normal / p.n_train, rng, names)
    val = _make_split(world, s, "val", s.n_val, p.n_train_normal / p.n_train, rng, names)
    test = _make_split(world, s, "test", n_test, p.n_test_normal / p.n_test, rng, names)
    return Benchmark(train, val, test, tuple(c.name for c in p.classes),
                     name=f"synthetic-{preset}-{s.name}-seed{seed}", multi_label=p.multi_label)


def _check_args(preset: str, scale: str | None, seed, dim: int | None) -> tuple[Preset, Scale, int]:
    """Validate the arguments of :func:`make_benchmark`; ``scale=None`` reads ``$VADBOOK_SCALE``."""
    if scale is None:
        scale = os.environ.get("VADBOOK_SCALE", "small")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {sorted(SCALES)}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    p, s = PRESETS[preset], SCALES[scale]
    dim = s.dim if dim is None else int(dim)
    if dim < ACTIVITY_DIM + len(p.classes):
        raise ValueError(f"dim={dim} too small: need at least {ACTIVITY_DIM + len(p.classes)}")
    return p, s, dim


class _World:
    """Quantities shared by all videos of a benchmark: mean feature and class signatures."""

    def __init__(self, p: Preset, dim: int, rng: np.random.Generator, signatures: np.ndarray | None = None):
        self.p, self.dim = p, dim
        basis, _ = np.linalg.qr(rng.standard_normal((dim, ACTIVITY_DIM + len(p.classes) + 1)))
        self.activity = basis[:, :ACTIVITY_DIM].T                    # [K, D] orthonormal
        unique = basis[:, ACTIVITY_DIM:-1].T                         # [C, D] orthonormal
        common = basis[:, -1]                                        # what all anomalies share
        mix = rng.standard_normal((len(p.classes), ACTIVITY_DIM))
        shared = mix / np.linalg.norm(mix, axis=1, keepdims=True) @ self.activity
        nl = np.array([c.normal_like for c in p.classes])[:, None] * (1 - COMMON)
        # unit-norm signatures: a common anomaly part, a part along normal activity, a unique part
        self.signature = (np.sqrt(COMMON) * common + np.sqrt(nl) * shared
                          + np.sqrt(1 - COMMON - nl) * unique)
        self.mean = MEAN_NORM * np.abs(rng.standard_normal(dim))
        self.scene = np.linalg.qr(rng.standard_normal((dim, SCENE_DIM)))[0].T     # [S, D]
        self.class_p_train = _freq([c.train for c in p.classes])
        self.class_p_test = _freq([c.test for c in p.classes])
        if signatures is not None:
            sig = np.asarray(signatures, np.float64)
            if sig.shape != self.signature.shape or not np.isfinite(sig).all():
                raise ValueError(f"signatures must be finite [C, D] = {list(self.signature.shape)}, "
                                 f"got shape {list(sig.shape)}")
            self.signature = sig / np.linalg.norm(sig, axis=1, keepdims=True).clip(1e-12)


def _freq(counts):
    c = np.asarray(counts, float)
    return c / c.sum()


class _NameCounter:
    """Video names in the public naming schemes (``Abuse001_x264``, ``v0001_label_B1-0-0``)."""

    XD_CODES = {"Fighting": "B1", "Shooting": "B2", "Riot": "B4", "Abuse": "B5",
                "CarAccident": "B6", "Explosion": "G"}

    def __init__(self, p: Preset):
        self.p, self.count = p, {}

    def __call__(self, classes: tuple[str, ...]) -> str:
        key = classes[0] if classes else "Normal"
        self.count[key] = self.count.get(key, 0) + 1
        i = self.count[key]
        if self.p.name == "ucf":
            return f"{key}{i:03d}_x264" if classes else f"Normal_Videos_{i:03d}_x264"
        codes = [self.XD_CODES[c] for c in classes] or ["A"]
        return f"{key.lower()}_v{i:04d}_label_{'-'.join(codes + ['0'] * (3 - len(codes)))}"


def _allocate(n: int, probs: np.ndarray, minimum: int) -> np.ndarray:
    """Split ``n`` videos over classes proportionally (largest remainder), each >= minimum."""
    base = np.full(len(probs), minimum) if n >= minimum * len(probs) else np.zeros(len(probs), int)
    rest = n - base.sum()
    raw = probs * rest
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: rest - counts.sum()]] += 1
    return base + counts


def _make_split(w: _World, s: Scale, split: str, n: int, normal_frac: float,
                rng: np.random.Generator, names: _NameCounter) -> list[Video]:
    if n <= 0:
        raise ValueError(f"{split} split needs a positive number of videos, got {n}")
    n_normal = int(round(n * normal_frac))
    probs = w.class_p_test if split == "test" else w.class_p_train
    minimum = s.min_per_class if split == "train" else (2 if split == "test" else 1)
    per_class = _allocate(n - n_normal, probs, minimum)
    videos = [_make_video(w, s, split, (), rng, names) for _ in range(n_normal)]
    for c, k in enumerate(per_class):
        for _ in range(k):
            videos.append(_make_video(w, s, split, _video_classes(w.p, c, rng), rng, names))
    order = rng.permutation(len(videos))
    return [videos[i] for i in order]


def _video_classes(p: Preset, first: int, rng) -> tuple[str, ...]:
    n_labels = _draw(p.labels_per_video, rng)
    others = [i for i in range(len(p.classes)) if i != first]
    extra = rng.choice(others, size=min(n_labels - 1, len(others)), replace=False)
    return tuple(p.classes[i].name for i in [first, *sorted(extra)])


def _draw(hist: dict[int, int], rng) -> int:
    keys = np.array(list(hist))
    return int(rng.choice(keys, p=_freq(list(hist.values()))))


def _make_video(w: _World, s: Scale, split: str, classes: tuple[str, ...], rng,
                names: _NameCounter) -> Video:
    p = w.p
    mu, sd = (p.len_mu_abn, p.len_sigma_abn) if classes else (p.len_mu_norm, p.len_sigma_norm)
    T = int(np.clip(round(math.exp(rng.normal(mu, sd))), 10, s.max_len))
    events = _place_events(p, classes, split, T, rng) if classes else []
    x = _features(w, T, events, rng)
    glances = None
    if classes and split == "train":
        # one click inside each event (GlanceVAD annotation protocol), s < g < e where possible
        glances = np.array([rng.integers(a + (b - a > 2), b - (b - a > 2)) for a, b, *_ in events])
    ev = [(a, b, c) for a, b, c, _ in events]
    return Video(names(classes), x, int(bool(classes)), classes, events=ev, glances=glances,
                 fps=p.fps, strengths=tuple(round(e[3], 4) for e in events) or None)


def _place_events(p: Preset, classes, split, T, rng) -> list[tuple[int, int, str, float]]:
    """Events ``(start, end, class, severity)``: counts, durations and non-overlapping places."""
    specs = {c.name: c for c in p.classes}
    if "CarAccident" in classes:     # XD car accidents: many short intervals (mean 4.9)
        n = 1 + rng.poisson(3.9)
    else:
        n = _draw(p.train_events if split == "train" else p.test_events, rng)
    n = max(1, min(n, T // 4))
    cls = [classes[i % len(classes)] for i in range(n)]
    rng.shuffle(cls)
    dur = np.array([math.exp(rng.normal(math.log(specs[c].dur_median / 16), specs[c].dur_sigma))
                    for c in cls])
    dur = np.maximum(1, np.round(dur)).astype(int)
    budget = int(0.9 * T) - (n - 1)
    if dur.sum() > budget:   # long events in a short video fill at most 90% of it
        dur = np.maximum(1, np.floor(dur * budget / dur.sum())).astype(int)
    free = T - dur.sum() - (n - 1)
    gaps = rng.multinomial(free, rng.dirichlet(np.ones(n + 1)))
    severity = np.concatenate([[rng.uniform(0.85, 1.0)], rng.uniform(0.3, 0.85, n - 1)])
    rng.shuffle(severity)
    events, t = [], 0
    for i in range(n):
        t += gaps[i] + (1 if i else 0)
        events.append((int(t), int(t + dur[i]), cls[i], float(severity[i])))
        t += dur[i]
    return events


def _profile(d: int, rng) -> np.ndarray:
    """Graded onset, plateau with fluctuations, graded offset: ``[d]`` intensities in (0, 1]."""
    ramp = max(1, int(round(rng.uniform(0.1, 0.35) * d)))
    t = np.arange(d) + 0.5
    up = np.clip(t / ramp, 0, 1)
    down = np.clip((d - t) / ramp, 0, 1)
    shape = np.minimum(up, down)
    shape = shape * shape * (3 - 2 * shape)                 # smoothstep
    wobble = _ar1(d, 0.8, 0.25, rng)
    return np.clip(shape * (1 + wobble), 0.05, 1.3)


def _ar1(n: int, rho: float, std: float, rng, k: int | None = None) -> np.ndarray:
    """A stationary AR(1) process of ``n`` steps (``[n]`` or ``[n, k]``)."""
    shape = (n,) if k is None else (n, k)
    e = rng.standard_normal(shape) * std * math.sqrt(1 - rho**2)
    out = np.empty(shape)
    out[0] = rng.standard_normal(shape[1:]) * std
    for t in range(1, n):
        out[t] = rho * out[t - 1] + e[t]
    return out


def _features(w: _World, T: int, events, rng) -> np.ndarray:
    D, p = w.dim, w.p
    scene = rng.standard_normal(SCENE_DIM) * SCENE_STD @ w.scene
    if p.moving_camera:  # shot cuts: a new scene every ~40 snippets, plus drift
        cuts = np.cumsum(rng.random(T) < 1 / 40)
        scenes = rng.standard_normal((cuts[-1] + 1, SCENE_DIM)) * SCENE_STD
        scene = (scenes[cuts] + _ar1(T, 0.95, 0.3 * SCENE_STD, rng, SCENE_DIM)) @ w.scene
    activity = _ar1(T, 0.9, ACTIVITY_STD, rng, ACTIVITY_DIM)
    for _ in range(rng.poisson(T * BURST_RATE)):   # harmless bursts of activity
        d = max(2, int(round(math.exp(rng.normal(math.log(6), 0.5)))))
        a = int(rng.integers(0, max(1, T - d)))
        direction = rng.standard_normal(ACTIVITY_DIM)
        direction *= SIGNAL * rng.uniform(0.3, 0.7) / np.linalg.norm(direction)
        activity[a:a + d] += _profile(min(d, T - a), rng)[:, None] * direction
    x = w.mean + scene + activity @ w.activity + rng.standard_normal((T, D)) * NOISE_STD
    names = [c.name for c in p.classes]
    if events:   # scene context: the places where crimes happen look a little like them
        k = names.index(events[0][2])
        x += SIGNAL * p.classes[k].salience * rng.uniform(0, 2 * CONTEXT) * w.signature[k]
    for a, b, c, sev in events:
        k = names.index(c)
        sig = w.signature[k] + SIGNATURE_JITTER * rng.standard_normal(D) / math.sqrt(D)
        amp = SIGNAL * p.classes[k].salience * sev
        x[a:b] += amp * _profile(b - a, rng)[:, None] * sig
        # aftermath (smoke, a crowd, people running): decaying, un-annotated context
        tail = min(T - b, int(round(rng.uniform(0.5, 1.5) * (b - a))))
        if tail > 0:
            decay = AFTERMATH * np.exp(-np.arange(tail) / max(1.0, tail / 3))
            x[b:b + tail] += amp * decay[:, None] * sig
    return x.astype(np.float32)


def statistics(videos: list[Video]) -> dict[str, float]:
    """Summary statistics to compare with ``reference/dataset-stats.md``."""
    abn = [v for v in videos if v.label == 1]
    lengths = np.array([v.T for v in videos])
    frac = np.array([v.gt.mean() for v in abn]) if abn else np.zeros(1)
    n_events = np.array([len(v.events) for v in abn]) if abn else np.zeros(1)
    total_gt = sum(float(v.gt.sum()) for v in videos)
    return {
        "videos": len(videos), "abnormal": len(abn),
        "median_len_snippets": float(np.median(lengths)), "mean_len_snippets": float(lengths.mean()),
        "anomalous_frac_all": total_gt / lengths.sum(),
        "anomalous_frac_abnormal_median": float(np.median(frac)),
        "events_per_abnormal_mean": float(n_events.mean()),
    }


def hidden_directions(preset: str = "ucf", seed: int = 0, dim: int | None = None,
                      scale: str | None = None) -> dict[str, np.ndarray]:
    """The generator's hidden directions of ``make_benchmark(preset, scale, seed, dim)``, for figures.

    Projecting a video's features on these directions shows the building blocks of the
    feature model (module docstring) one at a time: a class signature ``u_c`` shows that
    class's events with their graded edges, the un-annotated aftermath and the scene context;
    the activity subspace shows the harmless bursts. No method may use them: they are what a
    weakly-supervised detector has to discover. Only the shared quantities are drawn (first,
    from the same random stream as :func:`make_benchmark`), no video.

    Returns:
        dict of float64 arrays: ``signature`` ``[C, D]`` unit class signatures (order of the
        preset's classes), ``activity`` ``[K, D]`` and ``scene`` ``[S, D]`` orthonormal bases,
        ``mean`` ``[D]``, and the preset's ``salience`` and ``normal_like`` ``[C]``.
    """
    p, _, dim = _check_args(preset, scale, seed, dim)
    w = _World(p, dim, np.random.default_rng([seed, 7]))
    return {"signature": w.signature, "activity": w.activity, "scene": w.scene, "mean": w.mean,
            "salience": np.array([c.salience for c in p.classes]),
            "normal_like": np.array([c.normal_like for c in p.classes])}
