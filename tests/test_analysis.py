"""vadbook.analysis: event records against a loop written from their definitions."""
import numpy as np
import pytest

from vadbook.analysis import coverage_by_duration, event_records, weaker_event_summary
from vadbook.data import Video


def _videos(rng, n=6):
    out = []
    for i in range(n):
        T = int(rng.integers(20, 60))
        events = [(3, 9, "A"), (15, 19, "A")] if i % 2 == 0 else [(2, 12, "B")]
        strengths = (1.0, 0.4) if i % 2 == 0 else (0.9,)
        out.append(Video(f"v{i}", rng.standard_normal((T, 4)), 1, ("A",) if i % 2 == 0 else ("B",),
                         events=events, strengths=strengths))
    out.append(Video("n0", rng.standard_normal((30, 4)), 0))
    return out


def _naive(scores, videos, thr):
    recs = []
    for s, v in zip(scores, videos):
        if v.label == 0:
            continue
        k = v.T // 16 + 1
        top = set(np.argsort(-s, kind="stable")[:k].tolist())
        best = int(np.argmax(v.strengths))
        for j, (a, b, _) in enumerate(v.events):
            recs.append((v.name, j, any(t in top for t in range(a, b)), float(np.mean(s[a:b] >= thr)), j == best))
    return recs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_event_records_match_loop(seed):
    rng = np.random.default_rng(seed)
    videos = _videos(rng)
    scores = [rng.random(v.T).astype(np.float32) for v in videos]
    got = [(r.video, r.index, r.in_topk, r.coverage, r.strongest) for r in event_records(scores, videos, 0.5)]
    assert got == _naive(scores, videos, 0.5)


def test_summaries_on_hand_case():
    v = Video("v", np.zeros((32, 2)), 1, ("A",), events=[(0, 4, "A"), (10, 30, "A")], strengths=(1.0, 0.3))
    s = np.zeros(32, np.float32)
    s[0:3] = 0.9                      # k = 3 snippets, all inside the strong event
    s[10:15] = 0.6                    # a quarter of the long weak event above 0.5
    recs = event_records([s], [v])
    assert [r.in_topk for r in recs] == [True, False]
    w = weaker_event_summary(recs)
    assert w["strongest_in_topk"] == 1.0 and w["weaker_in_topk"] == 0.0
    c = coverage_by_duration(recs, long_from=20)
    assert c["short_coverage"] == pytest.approx(0.75) and c["long_coverage"] == pytest.approx(0.25)
    # long event [10, 30): quarter q = 5; edges [10,15) hit, [25,30) not; core [15,25) not
    assert c["long_edge_coverage"] == pytest.approx(0.5) and c["long_core_coverage"] == 0.0
    assert c["long_spill"] == 0.0


def test_bad_lengths_name_the_video():
    v = Video("clip7", np.zeros((10, 2)), 1, ("A",), events=[(1, 3, "A")])
    with pytest.raises(ValueError, match="clip7.*9 scores.*T=10"):
        event_records([np.zeros(9)], [v])
