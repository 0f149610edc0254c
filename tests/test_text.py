"""Tests for vadbook.text: offline MiniLM loading, shapes, determinism and the two caches."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from vadbook import text


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VADBOOK_CACHE", str(tmp_path))
    text._encode_one.cache_clear()
    yield tmp_path
    text._encode_one.cache_clear()


def test_descriptions_follow_preset_order():
    from vadbook.data.presets import PRESETS
    for preset in ("ucf", "xd"):
        d = text.class_descriptions(preset)
        assert tuple(d) == tuple(c.name for c in PRESETS[preset].classes)
        assert all(isinstance(s, str) and len(s) > 10 for s in d.values())
    with pytest.raises(ValueError, match="preset"):
        text.class_descriptions("kinetics")
    with pytest.raises(ValueError, match="no description"):
        text.class_descriptions(("Juggling",))


_OFFLINE_SCRIPT = """
import numpy as np
from vadbook import text
desc = list(text.class_descriptions("ucf").values())
emb = text.encode_texts(desc)                       # loads MiniLM, fills the disk cache
again = np.stack([text._minilm([t])[0] for t in desc])  # the model itself, a second time
assert np.abs(emb - again).max() < 1e-5, np.abs(emb - again).max()
a, b, c = text.encode_texts(["a man fires a gun at people", "someone is shooting a pistol",
                             "a quiet library with people reading"])
print("OK", emb.shape, round(float(a @ b - a @ c), 3))
"""


def test_minilm_offline_shape_determinism_and_cache(tmp_cache):
    """Loads the bundled model once, in a fresh process with the network pointed nowhere."""
    env = dict(os.environ, VADBOOK_CACHE=str(tmp_cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    out = subprocess.run([sys.executable, "-c", _OFFLINE_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    shape, _, gap = out.stdout.strip().splitlines()[-1].split(" ", 1)[1].rpartition(" ")
    assert shape == "(13, 384)"
    assert float(gap) > 0.2  # a real sentence encoder: paraphrase closer than unrelated text
    # one file per text on disk; this process reads them back without loading the model
    assert len(list((tmp_cache / "text").glob("*.npy"))) == 16
    desc = list(text.class_descriptions("ucf").values())
    emb = text.encode_texts(desc)
    assert emb.shape == (13, text.DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert text.load_encoder.cache_info().currsize == 0
    np.testing.assert_array_equal(text.encode_texts(desc[::-1]), emb[::-1])


def test_custom_encoder_and_cache_key(tmp_cache):
    calls = []

    def fake(texts):
        calls.append(list(texts))
        return np.ones((len(texts), 4)) * len(texts[0])

    e1 = text.encode_texts(["ab", "abc", "ab"], encoder=fake, name="fake")
    assert e1.shape == (3, 4) and calls == [["ab"], ["abc"]]  # the repeat came from memory
    np.testing.assert_array_equal(e1[:, 0], [2, 3, 2])
    with pytest.raises(ValueError, match="list of strings"):
        text.encode_texts("ab")
    with pytest.raises(ValueError, match="empty"):
        text.encode_texts([])


# ----------------------------------------------------------------------------- text-aligned benchmark
def _fake_minilm(texts):
    """Deterministic stand-in for MiniLM (keeps these tests fast): hashed unit vectors."""
    out = []
    for t in texts:
        rng = np.random.default_rng(sum(map(ord, t)) * 7919 + len(t))
        v = rng.standard_normal(384)
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


def test_text_aligned_benchmark(tmp_cache, monkeypatch):
    from vadbook.data import make_benchmark
    from vadbook.data.synthetic import _World
    from vadbook.data.presets import PRESETS
    from vadbook.data.text_aligned import make_text_aligned_benchmark, text_projection

    monkeypatch.setattr(text, "encode_texts", lambda texts: _fake_minilm(texts).astype(np.float32))
    bench = make_text_aligned_benchmark("xd", "small", seed=1, dim=64)
    plain = make_benchmark("xd", "small", seed=1, dim=64)
    assert bench.name == "text-aligned-xd-small-seed1-d64" and bench.name != plain.name
    assert bench.text_features.shape == (7, 64) and bench.projection.shape == (64, 384)
    np.testing.assert_allclose(np.linalg.norm(bench.text_features, axis=1), 1, atol=1e-5)
    # same videos and events, different signatures
    assert [v.events for v in bench.test] == [v.events for v in plain.test]
    assert not np.allclose(bench.test[0].features, plain.test[0].features)
    # event snippets lean towards their own class's text feature more than to the others
    normal_mean = np.concatenate([v.features for v in bench.train if v.label == 0]).mean(0)
    own, other = [], []
    for v in bench.train:
        for s, e, c in v.events:
            x = v.features[s:e].mean(0) - normal_mean
            sims = bench.text_features[1:] @ (x / np.linalg.norm(x))
            k = bench.classes.index(c)
            own.append(sims[k])
            other.append(np.delete(sims, k).mean())
    assert np.mean(own) > np.mean(other) + 0.05
    # the stand-in text encoder reproduces the stored text features
    np.testing.assert_allclose(bench.encode_text([bench.normal_description]), bench.text_features[:1], atol=1e-6)
    p = text_projection(64)
    np.testing.assert_allclose(p @ p.T, np.eye(64), atol=1e-10)
    # the signatures hook: passing the generated signatures back reproduces the default videos
    world = _World(PRESETS["xd"], 64, np.random.default_rng([1, 7]))
    again = make_benchmark("xd", "small", seed=1, dim=64, signatures=world.signature)
    np.testing.assert_allclose(again.test[3].features, plain.test[3].features, atol=1e-5)
    with pytest.raises(ValueError, match="signatures must be"):
        make_benchmark("xd", "small", seed=1, dim=64, signatures=world.signature[:3])
