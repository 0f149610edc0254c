"""Real-feature loaders: every public layout, the ground-truth rules, and every bad input."""
import json
import warnings

import numpy as np
import pytest

from vadbook.data import annotations as A
from vadbook.data import gt as G
from vadbook.data.fixtures import make_fixture
from vadbook.data.layouts import LAYOUTS
from vadbook.data.real import RealVideo, load_features, load_ucf, load_xd
from vadbook.data.splits import merge_crops, stratified_split

F = 16
SMALL = dict(dim=8, n_train=(3, 3), n_test=(3, 3), T_range=(20, 30))


def _fx(tmp_path, dataset="ucf", layout="urdmu", **kw):
    return make_fixture(tmp_path / f"{layout}-{dataset}", dataset, layout, **{**SMALL, **kw})


def _load(fx, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a clean fixture loads without warnings
        return load_features(fx.root, fx.dataset, fx.layout, **kw)


# --- names and labels -------------------------------------------------------------------------

@pytest.mark.parametrize("entry, expected", [
    ("E:/DLCode/datasets/RGB/Abuse028_x264__3.npy", ("Abuse028_x264", 3)),
    ("C:\\Users\\lab\\feats\\Abuse028_x264__0.npy", ("Abuse028_x264", 0)),
    ("/home/yu/SH_Train_ten_crop_i3d/Normal_Videos308_3_x264_i3d.npy", ("Normal_Videos308_3_x264", None)),
    ("Arson011_x264.mp4", ("Arson011_x264", None)),
    ("v=251___mEwZA__#1_label_B1-0-0__4.npy", ("v=251___mEwZA__#1_label_B1-0-0", 4)),
    ("Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6", ("Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6", None)),
])
def test_video_id(entry, expected):
    assert A.video_id(entry) == expected


@pytest.mark.parametrize("name, dataset, expected", [
    ("Abuse028_x264", "ucf", (1, ("Abuse",))),
    ("RoadAccidents001_x264", "ucf", (1, ("RoadAccidents",))),
    ("Normal_Videos_003_x264", "ucf", (0, ())),
    ("Normal_Videos308_3_x264", "ucf", (0, ())),
    ("X__#1_label_A", "xd", (0, ())),
    ("X__#1_label_B2-G-0", "xd", (1, ("Shooting", "Explosion"))),
    ("X__#1_label_B6-B4-B5", "xd", (1, ("CarAccident", "Riot", "Abuse"))),
    ("X__#1_label_B1-0-0", "xd", (1, ("Fighting",))),
])
def test_labels_from_name(name, dataset, expected):
    assert A.labels_from_name(name, dataset) == expected


@pytest.mark.parametrize("name, dataset", [("Fishing001_x264", "ucf"), ("X__#1_label_B3-0-0", "xd"),
                                           ("X__#1_label_A-B1-0", "xd"), ("X__#1", "xd")])
def test_unknown_class_is_an_error(name, dataset):
    with pytest.raises(ValueError, match="class|_label_"):
        A.labels_from_name(name, dataset)


# --- every layout -----------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["ucf", "xd"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_loads_with_truth(tmp_path, layout, dataset):
    fx = _fx(tmp_path, dataset, layout)
    b = _load(fx, val="none")
    assert b.name == f"{dataset}-{layout}" and b.multi_label == (dataset == "xd")
    assert [v.name for v in b.train] == fx.train and [v.name for v in b.test] == fx.test
    assert b.feature_dim == 8 and b.val == []
    for v in b.train + b.test:
        assert isinstance(v, RealVideo) and v.T == fx.T[v.name] and v.crop is None
        assert (v.label, v.classes) == A.labels_from_name(v.name, dataset)
        assert v.fps == (30.0 if dataset == "ucf" else 24.0)
    for v in b.test:
        want = np.zeros(F * v.T, np.float32)
        for s, e in fx.events.get(v.name, []):
            want[s:e] = 1
        np.testing.assert_array_equal(v.frame_gt, want)
        np.testing.assert_array_equal(v.gt, want.reshape(-1, F).max(1))       # any-frame rule
        assert v.events == [(s // F, -(-e // F), v.classes[0]) for s, e in fx.events.get(v.name, [])]
        assert v.gt_kind == "frame"
    for v in b.train:
        assert v.gt_kind == "none" and not v.gt.any() and v.events == []
        if v.label:
            np.testing.assert_array_equal(v.glances, fx.glances[v.name] // F)
            np.testing.assert_array_equal(v.glance_frames, fx.glances[v.name])
        else:
            assert v.glances is None


def test_features_are_the_crop_mean_and_single_crops(tmp_path):
    fx = _fx(tmp_path)
    name = fx.train[0]
    crops = np.stack([np.load(next(fx.root.rglob(f"{name}__{c}.npy"))) for c in range(10)])
    b = _load(fx, val="none")
    np.testing.assert_allclose(b.train[0].features, crops.mean(0), rtol=1e-6, atol=1e-6)
    b3 = _load(fx, val="none", crops=3)
    np.testing.assert_array_equal(b3.train[0].features, crops[3])
    assert b3.train[0].crop == 3 and b3.train[0].name == name
    ball = _load(fx, val="none", crops="all")
    assert len(ball.train) == 10 * len(fx.train)
    assert [v.name for v in ball.train[:10]] == [f"{name}__{c}" for c in range(10)]
    np.testing.assert_array_equal(ball.train[7].features, crops[7])


def test_rtfm_crops_come_from_the_second_axis(tmp_path):
    fx = _fx(tmp_path, layout="rtfm")
    a = np.load(next(fx.root.rglob(f"{fx.test[1]}_i3d.npy")))
    assert a.shape == (fx.T[fx.test[1]], 10, 8)
    b = _load(fx, val="none", test_crops=4)
    np.testing.assert_array_equal(b.test[1].features, a[:, 4])
    with pytest.raises(ValueError, match="crop index"):
        _load(fx, val="none", crops=10)


def test_merge_crops_averages_scores(tmp_path):
    fx = _fx(tmp_path)
    b = _load(fx, val="none", test_crops="all")
    assert len(b.test) == 10 * len(fx.test)
    rng = np.random.default_rng(0)
    scores = [rng.random(v.T) for v in b.test]
    merged_s, merged_v = merge_crops(scores, b.test)
    assert [v.name for v in merged_v] == fx.test
    np.testing.assert_allclose(merged_s[0], np.mean(scores[:10], axis=0))
    assert merged_v[0].crop is None and merged_v[0].frame_gt.shape == (F * merged_v[0].T,)
    with pytest.raises(ValueError, match="score arrays"):
        merge_crops(scores[:-1], b.test)


# --- ground truth -----------------------------------------------------------------------------

def test_ground_truth_sources_agree(tmp_path):
    fx = _fx(tmp_path, layout="glancevad")
    by_ann = _load(fx, val="none")
    by_array = _load(fx, val="none", frame_gt=fx.paths["frame_gt"])
    by_json = _load(fx, val="none", frame_gt=fx.paths["gt_json"])       # true frame counts: tails dropped
    for a, b, c in zip(by_ann.test, by_array.test, by_json.test):
        np.testing.assert_array_equal(a.frame_gt, b.frame_gt)
        np.testing.assert_array_equal(a.frame_gt, c.frame_gt)
        np.testing.assert_array_equal(a.gt, b.gt)
    concat = np.concatenate([v.frame_gt for v in by_ann.test])
    np.testing.assert_array_equal(concat, np.load(fx.paths["frame_gt"]))   # = the public gt-*.npy


def test_end_inclusive_adds_the_last_frame(tmp_path):
    fx = _fx(tmp_path)
    excl, incl = _load(fx, val="none"), _load(fx, val="none", end_inclusive=True)
    for a, b in zip(excl.test, incl.test):
        n_events = sum(1 for s, e in fx.events.get(a.name, []) if e < F * a.T)
        assert b.frame_gt.sum() - a.frame_gt.sum() == n_events


def test_events_past_the_end_are_clipped_with_a_warning(tmp_path):
    fx = _fx(tmp_path, quirk=True)
    name = next(n for n in fx.test if n in fx.events)
    with pytest.warns(UserWarning, match=r"past the 16\*T frames.*" + name.split("_")[0]):
        b = load_features(fx.root, "ucf", "urdmu", val="none")
    v = next(v for v in b.test if v.name == name)
    s, _ = fx.events[name][-1]
    assert v.frame_gt[s:].all() and v.events[-1][1] == v.T


def test_glance_frame_to_grid_matches_the_formula():
    rng = np.random.default_rng(1)
    for _ in range(200):
        T, L = int(rng.integers(1, 400)), int(rng.integers(1, 300))
        frames = rng.integers(0, F * T, size=5)
        want = [min(int((f / 16) / T * L), L - 1) for f in frames]
        assert G.glance_frame_to_grid(frames, T, L).tolist() == want
    assert G.glance_frame_to_grid(31, 10, 20).tolist() == [3]          # snippet 1 would give 2
    with pytest.raises(ValueError):
        G.glance_frame_to_grid(-1, 10, 20)


# --- validation splits ------------------------------------------------------------------------

def test_validation_holdout_is_stratified_disjoint_and_seeded(tmp_path):
    fx = _fx(tmp_path, n_test=(6, 8))
    b = _load(fx)
    assert {v.name for v in b.val}.isdisjoint(v.name for v in b.test)
    assert {v.name for v in b.val} | {v.name for v in b.test} == set(fx.test)
    assert {v.label for v in b.val} == {0, 1} and all(v.gt_kind == "frame" for v in b.val)
    assert [v.name for v in _load(fx).val] == [v.name for v in b.val]
    picked = [v.name for v in _load(fx, val=[fx.test[0], fx.test[-1]]).val]
    assert picked == [fx.test[0], fx.test[-1]]


def test_validation_modes(tmp_path):
    fx = _fx(tmp_path, n_train=(5, 5))
    with pytest.warns(UserWarning, match="test set"):
        b = load_features(fx.root, "ucf", "urdmu", val="test")
    assert b.val == b.test
    g = _load(fx, val="glances", val_fraction=0.4)
    assert {v.name for v in g.val}.isdisjoint(v.name for v in g.train) and len(g.test) == len(fx.test)
    for v in g.val:
        assert v.gt_kind == "glance"
        if v.label:
            assert v.gt.sum() == len(np.unique(fx.glances[v.name] // F)) and v.gt[v.glances].all()
    with pytest.raises(ValueError, match="unknown val"):
        _load(fx, val="best")
    with pytest.raises(ValueError, match="must be test videos"):
        _load(fx, val=[fx.train[0]])


def test_stratified_split_needs_both_labels():
    labels = {"a": (1, ("Abuse",)), "b": (1, ("Abuse",)), "n": (0, ())}
    with pytest.raises(ValueError, match="normal"):
        stratified_split(["a", "b", "n"], labels, 0.5)
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(["a"], labels, 1.5)


# --- root -------------------------------------------------------------------------------------

def test_root_from_environment(tmp_path, monkeypatch):
    fx = _fx(tmp_path)
    monkeypatch.setenv("VADBOOK_DATA", str(fx.root))
    assert [v.name for v in load_ucf(val="none").test] == fx.test
    monkeypatch.delenv("VADBOOK_DATA")
    with pytest.raises(ValueError, match="VADBOOK_DATA"):
        load_ucf()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_ucf(tmp_path / "nowhere")


def test_load_xd_with_explicit_list_paths(tmp_path):
    fx = _fx(tmp_path, "xd")
    b = load_xd(fx.root, train_list=fx.paths["train_list"], test_list=str(fx.paths["test_list"].name),
                annotations=fx.paths["annotations"], glances=None, val="none")
    assert len(b.test) == len(fx.test) and all(v.glances is None for v in b.train)


# --- bad input --------------------------------------------------------------------------------

def test_missing_feature_file(tmp_path):
    fx = _fx(tmp_path)
    next(fx.root.rglob(f"{fx.test[0]}__7.npy")).unlink()
    with pytest.raises(FileNotFoundError, match=f"{fx.test[0]}.*crop 7"):
        _load(fx)
    _load(fx, val="none", test_crops=0)                           # crop 7 not needed


@pytest.mark.parametrize("bad, match", [
    (lambda a: a[:, :, None], r"must be \[T, D\]"),
    (lambda a: np.where(np.arange(a.shape[0])[:, None] == 3, np.nan, a), "NaN or inf in 1 of"),
    (lambda a: np.where(np.arange(a.shape[0])[:, None] == 0, np.inf, a), "NaN or inf"),
    (lambda a: a[:-1], "crops differ in shape"),
    (lambda a: a[:0], "differ in shape|T = 0"),
])
def test_bad_feature_files(tmp_path, bad, match):
    fx = _fx(tmp_path)
    path = next(fx.root.rglob(f"{fx.train[1]}__2.npy"))
    np.save(path, bad(np.load(path)))
    with pytest.raises(ValueError, match=match):
        _load(fx)


def test_bad_rtfm_shape_and_feature_dim(tmp_path):
    fx = _fx(tmp_path, layout="rtfm")
    with pytest.raises(ValueError, match="expected 16"):
        _load(fx, feature_dim=16)
    path = next(fx.root.rglob(f"{fx.train[0]}_i3d.npy"))
    np.save(path, np.load(path)[:, 0])
    with pytest.raises(ValueError, match=r"\[T, crops, D\]"):
        _load(fx)


def test_concatenated_ground_truth_of_the_wrong_length(tmp_path):
    fx = _fx(tmp_path)
    g = np.load(fx.paths["frame_gt"])
    msg = r"has %d frames .* cover 16 \* sum\(T\) = %d.*-1.00 snippets" % (g.size - F, g.size)
    with pytest.raises(ValueError, match=msg):
        _load(fx, frame_gt=g[:-F])
    plus_one = np.concatenate([np.zeros(F * (fx.T[n] + 1)) for n in fx.test])
    with pytest.raises(ValueError, match=r"\(T \+ 1\) \* 16"):
        _load(fx, frame_gt=plus_one)
    with pytest.raises(ValueError, match="0/1"):
        _load(fx, frame_gt=g * 2)


def test_misaligned_ground_truth_names_the_video(tmp_path):
    fx = _fx(tmp_path, T_range=(25, 25))                            # equal lengths: totals agree
    g = np.load(fx.paths["frame_gt"]).reshape(len(fx.test), -1)[::-1].ravel()
    with pytest.raises(ValueError, match=r"normal test video .* \(list position 3\)"):
        _load(fx, frame_gt=g)


def test_json_ground_truth_of_the_wrong_length(tmp_path):
    fx = _fx(tmp_path, layout="glancevad")
    d = json.loads(fx.paths["gt_json"].read_text())
    d[fx.test[2]]["labels"] = d[fx.test[2]]["labels"][:F * fx.T[fx.test[2]] - 1]
    with pytest.raises(ValueError, match=f"{fx.test[2]}.*{F * fx.T[fx.test[2]] - 1} frames"):
        _load(fx, frame_gt=d)
    del d[fx.test[2]]
    with pytest.raises(ValueError, match="no entry"):
        _load(fx, frame_gt=d)


def _rewrite(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_annotation_past_the_end(tmp_path):
    fx = _fx(tmp_path)
    name = next(n for n in fx.test if n in fx.events)
    s, e = fx.events[name][-1]
    _rewrite(fx.paths["annotations"], f"  {s}  {e}  ", f"  {s}  {F * fx.T[name] + 40}  ")
    with pytest.raises(ValueError, match=f"{name}.*ends 40 frames past the {F * fx.T[name]} frames"):
        _load(fx)
    with pytest.warns(UserWarning, match="clipped"):
        load_features(fx.root, "ucf", "urdmu", overrun_frames=48)


@pytest.mark.parametrize("edit, match", [
    (lambda n, s, e: (f"{n}.mp4  Abuse", f"{n}.mp4  Arson") if n.startswith("Abuse") else None, "disagrees"),
    (lambda n, s, e: (f"  {s}  {e}  ", f"  {e}  {s}  "), "not a valid"),
    (lambda n, s, e: (f"  {s}  {e}  ", f"  {s}  x  "), "integers"),
])
def test_malformed_annotation_lines(tmp_path, edit, match):
    fx = _fx(tmp_path)
    name = fx.test[0]
    s, e = fx.events[name][0]
    _rewrite(fx.paths["annotations"], *edit(name, s, e))
    with pytest.raises(ValueError, match=match):
        _load(fx)


def test_annotation_coverage(tmp_path):
    fx = _fx(tmp_path)
    text = fx.paths["annotations"].read_text().splitlines()
    fx.paths["annotations"].write_text("\n".join(text[1:]))
    with pytest.raises(ValueError, match=f"abnormal test video '{fx.test[0]}' has no line"):
        _load(fx)
    normal = next(n for n in fx.test if "Normal" in n)
    fx.paths["annotations"].write_text("\n".join(text).replace(f"{normal}.mp4  Normal  -1  -1",
                                                               f"{normal}.mp4  Normal  10  90"))
    with pytest.raises(ValueError, match="normal test video"):
        _load(fx)


def test_glance_errors(tmp_path):
    fx = _fx(tmp_path)
    name = next(n for n in fx.train if n in fx.glances)
    g = fx.glances[name][0]
    _rewrite(fx.paths["glances"], f"{name},{g}", f"{name},{F * fx.T[name] + 100}")
    with pytest.raises(ValueError, match=f"{name}.*glance at frame {F * fx.T[name] + 100} is past"):
        _load(fx)
    _rewrite(fx.paths["glances"], f"{name},{F * fx.T[name] + 100}", f"{name},{F * fx.T[name] + 5}")
    with pytest.warns(UserWarning, match="glances past"):
        b = load_features(fx.root, "ucf", "urdmu")
    assert next(v for v in b.train if v.name == name).glances.max() == fx.T[name] - 1
    _rewrite(fx.paths["glances"], f"{name},", "Abuse999_x264,")
    with pytest.raises(ValueError, match="not in the training list"):
        _load(fx)
    _rewrite(fx.paths["glances"], "Abuse999_x264,", f"{fx.train[-1]},")
    with pytest.raises(ValueError, match="normal training video"):
        _load(fx)


def test_list_errors(tmp_path):
    fx = _fx(tmp_path)
    lines = fx.paths["train_list"].read_text().splitlines()
    fx.paths["train_list"].write_text("\n".join(lines + lines[:1]))
    with pytest.raises(ValueError, match="crop 0 is listed twice"):
        _load(fx)
    test_lines = fx.paths["test_list"].read_text().splitlines()
    fx.paths["train_list"].write_text("\n".join(lines + test_lines[:1]))
    with pytest.raises(ValueError, match="both the training and the test list"):
        _load(fx)
    fx.paths["train_list"].unlink()
    with pytest.raises(FileNotFoundError, match="UCF_Train.list"):
        _load(fx)


def test_csv_label_must_agree_with_the_name(tmp_path):
    fx = _fx(tmp_path, layout="vadclip")
    name = fx.test[0]
    _rewrite(fx.paths["test_list"], f"{name}__0.npy,Abuse", f"{name}__0.npy,Normal")
    with pytest.raises(ValueError, match="label 'Normal' in the list but Abuse"):
        _load(fx)


def test_ambiguous_file_names_and_double_ground_truth(tmp_path):
    fx = _fx(tmp_path)
    src = next(fx.root.rglob(f"{fx.test[0]}__1.npy"))
    (fx.root / "copy").mkdir()
    (fx.root / "copy" / src.name).write_bytes(src.read_bytes())
    with pytest.raises(ValueError, match="2 files named"):
        _load(fx)
    with pytest.raises(ValueError, match="not both"):
        _load(fx, annotations=fx.paths["annotations"], frame_gt=fx.paths["frame_gt"])


def test_real_video_checks_frame_labels():
    with pytest.raises(ValueError, match="frame_labels"):
        RealVideo("v", np.zeros((3, 2), np.float32), 0, frame_labels=np.zeros(47))


# --- training through a loaded release ---------------------------------------------------------

def test_brief_training_run_learns_on_real_layout(tmp_path, device):
    torch = pytest.importorskip("torch")
    nn = pytest.importorskip("vadbook.nn")
    train = pytest.importorskip("vadbook.train")
    metrics = pytest.importorskip("vadbook.metrics")
    fx = make_fixture(tmp_path / "ucf", "ucf", "urdmu", n_train=(8, 8), n_test=(4, 4))   # 1024-d, 10 crops
    b = load_features(fx.root, "ucf", "urdmu", val="holdout", val_fraction=0.25)
    assert b.feature_dim == 1024
    cfg = train.TrainConfig(steps=40, batch_size=4, seq_len=32, eval_every=20, progress=False, device=str(device))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # tiny matmuls: threads only add contention on a shared CPU
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = train.fit(nn.MILHead(b.feature_dim), b.train, b.val, cfg)
        scores = train.predict(result.model, b.test)
    finally:
        torch.set_num_threads(threads)
    res = metrics.evaluate(scores, b.test)
    assert res["AUC"] > 0.8, res
    assert res["AP"] != res["AP_trapz"]                                   # the two AP definitions


def test_unknown_class_code_in_a_list(tmp_path):
    fx = _fx(tmp_path, "xd")
    _rewrite(fx.paths["test_list"], "label_B1-0-0__0.npy", "label_B3-0-0__0.npy")
    with pytest.raises(ValueError, match=r"unknown XD-Violence class code\(s\) \['B3'\]"):
        _load(fx)
