import pickle

import numpy as np
import pytest
import torch

from pyg_fer.data import PROTOTYPES, SyntheticFER, add_label_noise, build_dataset
from pyg_fer.data.synthetic import _identity, _render


def _arr(ds, i):
    return np.asarray(ds[i][0])


def test_deterministic_per_seed_split_index():
    a = SyntheticFER("train", num_samples=12, img_size=48)
    b = SyntheticFER("train", num_samples=40, img_size=48)  # size does not change sample i
    assert a.targets == b.targets[:12]
    for i in (0, 5, 11):
        assert np.array_equal(_arr(a, i), _arr(b, i))
    c = SyntheticFER("train", num_samples=12, img_size=48, seed=1)
    assert not np.array_equal(_arr(a, 0), _arr(c, 0))
    t = SyntheticFER("test", num_samples=12, img_size=48)
    assert not np.array_equal(_arr(a, 0), _arr(t, 0))


def test_image_format_and_class_orders():
    ds = SyntheticFER("train", num_samples=30, img_size=64)
    img, label = ds[0]
    assert img.mode == "RGB" and img.size == (64, 64) and isinstance(label, int)
    assert ds.classes == ["surprise", "fear", "disgust", "happiness", "sadness", "anger",
                          "neutral"]
    fp = SyntheticFER("train", num_samples=400, class_order="ferplus", img_size=32)
    assert len(fp.classes) == 8 and fp.classes[7] == "contempt"
    assert all(n > 20 for n in fp.class_counts())  # uniform classes by default


def test_train_and_test_identities_are_disjoint():
    tr = SyntheticFER("train", num_samples=300, img_size=32)
    te = SyntheticFER("test", num_samples=300, img_size=32)
    ids_tr = {tr.sample_params(i)["identity"] for i in range(len(tr))}
    ids_te = {te.sample_params(i)["identity"] for i in range(len(te))}
    assert ids_tr.isdisjoint(ids_te)
    assert len(ids_tr) < 300  # identities recur within a split, as people do in real data


def test_action_units_follow_prototypes():
    ds = SyntheticFER("train", num_samples=300, class_order="ferplus", img_size=32,
                      min_intensity=0.6)
    for i in range(len(ds)):
        p = ds.sample_params(i)
        aus, cls = p["aus"], p["class"]
        if cls == "neutral":
            assert max(aus.values()) < 0.35
        elif cls == "contempt":  # unilateral
            assert abs(aus["12L"] - aus["12R"]) > 0.1 and abs(aus["14L"] - aus["14R"]) > 0.1
        else:
            for u in PROTOTYPES[cls]:
                side = [u] if u in aus else [u + "L", u + "R"]
                assert all(aus[s] > 0.15 for s in side), (cls, u, aus)


def test_expression_moves_the_face_and_nothing_else_does():
    idn = _identity(np.random.default_rng(3))
    rest = dict.fromkeys(["1", "2", "4", "5", "6", "7", "9", "10", "12L", "12R", "14L", "14R",
                          "15", "20", "23", "26"], 0.0)
    happy = dict(rest, **{"6": 1.0, "12L": 1.0, "12R": 1.0})

    def draw(aus):
        return np.asarray(_render(idn, aus, np.random.default_rng(5), 64, 0.0, 0.0), dtype=float)

    assert np.array_equal(draw(rest), draw(rest))
    diff = np.abs(draw(happy) - draw(rest)).sum(axis=2)
    assert diff.sum() > 0
    ys, xs = np.nonzero(diff > 30)
    assert 16 < ys.mean() < 56 and 12 < xs.mean() < 52  # changes lie on the face


def test_grayscale_and_occlusion_options():
    g = SyntheticFER("train", num_samples=4, img_size=32, grayscale_prob=1.0)
    x = _arr(g, 0).astype(int)
    assert (x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all()
    o = SyntheticFER("train", num_samples=4, img_size=32, occlusion_prob=1.0)
    n = SyntheticFER("train", num_samples=4, img_size=32, occlusion_prob=0.0)
    assert any(not np.array_equal(_arr(o, i), _arr(n, i)) for i in range(4))


def test_transform_targets_and_label_noise():
    ds = build_dataset("synthetic", split="train", num_samples=50, img_size=32,
                       transform=lambda im: torch.as_tensor(np.array(im)).permute(2, 0, 1))
    x, y = ds[3]
    assert x.shape == (3, 32, 32) and y == ds.targets[3]
    before = ds[7][0]
    noisy, mask = add_label_noise(ds.targets, 0.2, ds.num_classes, seed=0)
    ds.targets = noisy
    assert [ds[i][1] for i in range(50)] == noisy.tolist()
    assert torch.equal(ds[7][0], before)  # the face keeps its true expression
    assert int(mask.sum()) == 10


def test_cache_dir(tmp_path):
    ds = SyntheticFER("test", num_samples=6, img_size=32, cache_dir=str(tmp_path))
    files = list(tmp_path.glob("synthetic_fer_*.npy"))
    assert len(files) == 1
    fresh = SyntheticFER("test", num_samples=6, img_size=32)
    for i in range(6):
        assert np.array_equal(_arr(ds, i), _arr(fresh, i))
    again = SyntheticFER("test", num_samples=6, img_size=32, cache_dir=str(tmp_path))
    assert isinstance(again._cache, np.memmap)


def test_a_pickled_cached_dataset_maps_the_file_instead_of_copying_it(tmp_path):
    """What a spawn-started DataLoader worker receives: the cache file's path, mapped again,
    not the cache's pixels; a later subset's rows travel with it."""
    ds = SyntheticFER("test", num_samples=40, img_size=32, cache_dir=str(tmp_path))
    ds.apply_subset([f"synthetic_{i:06d}" for i in (3, 17, 31)])
    blob = pickle.dumps(ds)
    assert len(blob) < ds._cache.nbytes // 4  # 40 x 32 x 32 x 3 bytes are not in it
    copy = pickle.loads(blob)
    (path,) = tmp_path.glob("synthetic_fer_*.npy")
    assert isinstance(copy._cache, np.memmap) and copy._cache.filename == str(path.resolve())
    assert copy.targets == ds.targets
    for i in range(len(ds)):
        assert np.array_equal(_arr(copy, i), _arr(ds, i))
    uncached = SyntheticFER("test", num_samples=4, img_size=32)
    plain = pickle.loads(pickle.dumps(uncached))
    assert plain._cache is None and np.array_equal(_arr(plain, 2), _arr(uncached, 2))


def test_cached_images_follow_a_later_subset_and_a_damaged_cache_is_rebuilt(tmp_path):
    ds = SyntheticFER("test", num_samples=6, img_size=24, cache_dir=str(tmp_path))
    fresh = SyntheticFER("test", num_samples=6, img_size=24)
    ds.apply_subset(["synthetic_000004", "synthetic_000005"])
    assert ds.targets == fresh.targets[4:]
    assert np.array_equal(_arr(ds, 0), _arr(fresh, 4)) and np.array_equal(_arr(ds, 1),
                                                                           _arr(fresh, 5))
    (path,) = tmp_path.glob("synthetic_fer_*.npy")
    good = path.read_bytes()
    # truncated; empty (np.load raises EOFError); the right shape in another dtype
    damaged = [(good[:1000], "is unusable .*rebuilding it"),
               (b"", "is unusable .*No data left.*rebuilding it")]
    for data, message in damaged:
        path.write_bytes(data)
        with pytest.warns(UserWarning, match=message):
            again = SyntheticFER("test", num_samples=6, img_size=24, cache_dir=str(tmp_path))
        assert np.array_equal(_arr(again, 3), _arr(fresh, 3))
    np.save(path, np.zeros((6, 24, 24, 3), dtype=np.float32))
    with pytest.warns(UserWarning, match=r"holds float32 \(6, 24, 24, 3\), not uint8"):
        again = SyntheticFER("test", num_samples=6, img_size=24, cache_dir=str(tmp_path))
    assert np.array_equal(_arr(again, 3), _arr(fresh, 3))


def test_subset_and_summary(tmp_path):
    lst = tmp_path / "sub.txt"
    lst.write_text("synthetic_000002\nsynthetic_000005\n")
    full = SyntheticFER("train", num_samples=8, img_size=32)
    ds = SyntheticFER("train", num_samples=8, img_size=32, subset=str(lst))
    assert len(ds) == 2 and ds.targets == [full.targets[2], full.targets[5]]
    assert np.array_equal(_arr(ds, 1), _arr(full, 5))
    assert "2 samples" in ds.summary()


@pytest.mark.parametrize("kw, match", [
    ({"split": "val"}, "split"), ({"class_order": "affectnet"}, "class_order"),
    ({"grayscale_prob": 2.0}, "grayscale_prob"), ({"min_intensity": -1}, "min_intensity"),
    ({"img_size": 8}, "img_size"), ({"class_weights": [1, 2]}, "class_weights"),
    ({"num_samples": -1}, "num_samples"),
    ({"target": "age"}, r"target must be one of \['expression', 'identity'\], got 'age'"),
    ({"start": -1}, "start must be >= 0"), ({"num_identities": 1_000_001}, "num_identities"),
    ({"num_identities": 0}, r"num_identities must be in \[1, 1000000\].*got 0"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        SyntheticFER(**kw)


def test_picklable_for_dataloader_workers():
    import pickle

    ds = SyntheticFER("test", num_samples=5, img_size=32)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.targets == ds.targets and np.array_equal(_arr(clone, 4), _arr(ds, 4))


# ---------------------------------------------------------------------------------------------
# The 'pretrain' split, target='identity' and start (identity pre-training, issue 16)
# ---------------------------------------------------------------------------------------------
def test_expression_target_is_unchanged():
    """Labels, identities and pixels pinned from the code before 'target'/'start' existed."""
    ds = SyntheticFER("train", num_samples=40, img_size=24)
    assert ds.target == "expression" and ds.start == 0
    assert ds.targets[:12] == [0, 4, 5, 1, 5, 4, 3, 2, 5, 6, 0, 0]
    assert ds.targets[33:40] == [3, 0, 0, 4, 2, 5, 2]
    pinned = {0: (3559, [185, 138, 120], 263363), 7: (2501, [112, 75, 65], 222152),
              33: (2218, [187, 154, 154], 185588)}
    for i, (identity, pixel, total) in pinned.items():
        a = np.asarray(ds.render(i))
        assert ds.sample_params(i)["identity"] == identity
        assert a[12, 12].tolist() == pixel and int(a.sum()) == total
    te = SyntheticFER("test", num_samples=40, img_size=24)
    assert te.targets[:8] == [3, 3, 6, 0, 5, 0, 5, 2]
    assert te.sample_params(7)["identity"] == 1000307
    a = np.asarray(te.render(7))
    assert a[12, 12].tolist() == [174, 149, 144] and int(a.sum()) == 224892
    fp = SyntheticFER("train", num_samples=20, img_size=24, class_order="ferplus")
    assert fp.targets[:10] == [1, 5, 6, 1, 5, 4, 4, 2, 6, 7]
    # the cache key of existing caches is kept (value computed before the change)
    assert SyntheticFER("train", num_samples=30, img_size=24)._cache_key() == "22e6b9d0aed8ce87"


def test_identity_targets_are_the_rendered_identity():
    for split in ("train", "pretrain"):
        ds = SyntheticFER(split, num_samples=60, img_size=24, target="identity",
                          num_identities=25)
        assert ds.classes == [f"identity_{k:04d}" for k in range(25)]
        assert len(set(ds.targets)) > 10 and all(0 <= t < 25 for t in ds.targets)
        for i in range(len(ds)):
            assert ds.targets[i] == ds.sample_params(i)["identity"] - ds.identity_base
        assert ds[3][1] == ds.targets[3]
    # the faces and their expressions are those of the expression-labelled dataset
    expr = SyntheticFER("pretrain", num_samples=60, img_size=24, num_identities=25)
    ident = SyntheticFER("pretrain", num_samples=60, img_size=24, num_identities=25,
                         target="identity")
    for i in (0, 17, 59):
        assert ident.sample_params(i)["label"] == expr.targets[i]
        assert ident.sample_params(i)["class"] == expr.classes[expr.targets[i]]
        assert np.array_equal(_arr(ident, i), _arr(expr, i))
    wide = SyntheticFER("pretrain", num_samples=2, img_size=24, target="identity",
                        num_identities=12_345)
    assert wide.classes[0] == "identity_00000" and wide.classes[-1] == "identity_12344"


def test_pretrain_identities_are_disjoint_from_train_and_test():
    ids = {}
    for split in ("train", "test", "pretrain"):
        ds = SyntheticFER(split, num_samples=300, img_size=24)
        ids[split] = {ds.sample_params(i)["identity"] for i in range(len(ds))}
    assert ids["pretrain"].isdisjoint(ids["train"]) and ids["pretrain"].isdisjoint(ids["test"])
    assert min(ids["pretrain"]) >= 2_000_000
    assert build_dataset("synthetic", split="pretrain", num_samples=3).split == "pretrain"
    assert len(SyntheticFER("pretrain", img_size=24, target="identity").classes) == 1000
    assert len(SyntheticFER("pretrain", img_size=24)) == 20_000


def test_start_is_the_tail_of_a_longer_dataset(tmp_path):
    full = SyntheticFER("pretrain", num_samples=30, img_size=24, target="identity",
                        num_identities=40)
    tail = SyntheticFER("pretrain", num_samples=10, img_size=24, target="identity",
                        num_identities=40, start=20)
    assert tail.names == [f"synthetic_{i:06d}" for i in range(20, 30)] == full.names[20:]
    assert tail.targets == full.targets[20:]
    for i in (0, 4, 9):
        assert np.array_equal(_arr(tail, i), _arr(full, 20 + i))
        assert tail.sample_params(i)["aus"] == full.sample_params(20 + i)["aus"]
    expr_full = SyntheticFER("train", num_samples=30, img_size=24)
    expr_tail = SyntheticFER("train", num_samples=10, img_size=24, start=20)
    assert expr_tail.targets == expr_full.targets[20:]
    # the cache tells start apart; the target changes no pixel, so both targets share a file
    a = SyntheticFER("test", num_samples=4, img_size=24, cache_dir=str(tmp_path))
    b = SyntheticFER("test", num_samples=4, img_size=24, start=4, cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("synthetic_fer_*.npy"))) == 2
    assert not np.array_equal(_arr(a, 0), _arr(b, 0))
    assert np.array_equal(_arr(b, 0), _arr(SyntheticFER("test", num_samples=5, img_size=24), 4))
    c = SyntheticFER("test", num_samples=4, img_size=24, start=4, target="identity",
                     cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("synthetic_fer_*.npy"))) == 2
    assert c._cache_key() == b._cache_key() and np.array_equal(_arr(c, 3), _arr(b, 3))


def test_identity_subset_keeps_faces(tmp_path):
    lst = tmp_path / "sub.txt"
    lst.write_text("synthetic_000012\nsynthetic_000015\n")
    full = SyntheticFER("pretrain", num_samples=10, img_size=24, start=8, target="identity")
    ds = SyntheticFER("pretrain", num_samples=10, img_size=24, start=8, target="identity",
                      subset=str(lst))
    assert ds.names == ["synthetic_000012", "synthetic_000015"]
    assert ds.targets == [full.targets[4], full.targets[7]]
    assert ds.sample_params(1)["label"] == full.sample_params(7)["label"]
    assert np.array_equal(_arr(ds, 1), _arr(full, 7))


# ---------------------------------------------------------------------------------------------
# Arguments, class weights, sampling details, the cache (mutation round 5)
# ---------------------------------------------------------------------------------------------
def test_boundary_arguments_are_allowed():
    assert len(SyntheticFER("train", num_samples=0)) == 0
    assert SyntheticFER("train", num_samples=1, img_size=16)[0][0].size == (16, 16)
    ds = SyntheticFER("train", num_samples=4, img_size=16, min_intensity=1.0)
    assert all(ds.sample_params(i)["intensity"] in (0.0, 1.0) for i in range(4))


@pytest.mark.parametrize("kw, match", [
    ({"min_intensity": 1.5}, r"min_intensity must be in \[0, 1\], got 1.5"),
    ({"occlusion_prob": -0.1}, r"occlusion_prob must be in \[0, 1\], got -0.1"),
    ({"class_weights": [1, 1, 1, -1, 1, 1, 1]}, "class_weights must be 7 non-negative numbers"),
    ({"class_weights": [0] * 7}, "class_weights must be 7 non-negative numbers"),
    ({"class_order": "ferplus", "class_weights": [1] * 7},
     "class_weights must be 8 non-negative numbers"),
])
def test_more_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        SyntheticFER(num_samples=4, **kw)


def test_class_weights_are_sampling_probabilities():
    # classes of zero weight never occur; the others at the given (relative) rates
    ds = SyntheticFER("train", num_samples=400, img_size=16, class_weights=[1, 0, 0, 0, 0, 0, 3])
    counts = ds.class_counts()
    assert counts[1:6] == [0] * 5
    assert 60 < counts[0] < 140 and counts[0] + counts[6] == 400
    only = SyntheticFER("train", num_samples=50, img_size=16, class_weights=[0, 0, 2, 0, 0, 0, 0])
    assert set(only.targets) == {2}


def test_default_sizes_of_the_splits():
    assert len(SyntheticFER("train", img_size=16)) == 10_000
    assert len(SyntheticFER("test", img_size=16)) == 2_000


def test_neutral_has_zero_intensity_and_contempt_either_side():
    ds = SyntheticFER("train", num_samples=60, img_size=16, class_order="ferplus",
                      min_intensity=0.4)
    params = [ds.sample_params(i) for i in range(len(ds))]
    neutral = [p["intensity"] for p in params if p["class"] == "neutral"]
    others = [p["intensity"] for p in params if p["class"] != "neutral"]
    assert neutral and all(v == 0.0 for v in neutral)
    assert others and all(0.4 <= v <= 1.0 for v in others)
    # contempt's side is random per sample, so a horizontal flip keeps the label
    sides = {p["aus"]["12L"] > p["aus"]["12R"] for p in params if p["class"] == "contempt"}
    assert sides == {True, False}


def test_grayscale_is_the_luma_of_the_colour_rendering():
    colour = SyntheticFER("train", num_samples=4, img_size=32)
    gray = SyntheticFER("train", num_samples=4, img_size=32, grayscale_prob=1.0)
    for i in range(4):
        rgb = _arr(colour, i).astype(float)
        g = _arr(gray, i)[..., 0].astype(float)
        # the same face, pose, lighting and noise; ITU-R 601 luma (up to uint8 rounding)
        assert np.median(np.abs(rgb @ [0.299, 0.587, 0.114] - g)) < 1.0


def test_occluded_and_contempt_faces_are_pinned():
    """Pixel sums pinned from the current code: each kind of occlusion (object, hand,
    glasses, mask, sunglasses) and contempt with its one-sided dimple (left, right)."""
    occ = SyntheticFER("train", num_samples=21, img_size=24, occlusion_prob=1.0)
    pinned = {0: 172466, 2: 155249, 4: 182643, 8: 167436, 20: 160425}
    assert {i: int(np.asarray(occ.render(i)).sum()) for i in pinned} == pinned
    fp = SyntheticFER("train", num_samples=44, img_size=24, class_order="ferplus")
    assert fp.classes[fp.targets[17]] == fp.classes[fp.targets[43]] == "contempt"
    assert int(np.asarray(fp.render(17)).sum()) == 290140
    assert int(np.asarray(fp.render(43)).sum()) == 210986


def test_a_cache_is_read_not_rerendered_and_its_folder_is_created(tmp_path):
    where = tmp_path / "a" / "b"
    SyntheticFER("test", num_samples=3, img_size=16, cache_dir=str(where))
    (path,) = where.glob("synthetic_fer_*.npy")
    np.save(path, np.full((3, 16, 16, 3), 7, dtype=np.uint8))  # stands in for the pixels
    again = SyntheticFER("test", num_samples=3, img_size=16, cache_dir=str(where))
    assert (_arr(again, 2) == 7).all()
    np.save(path, np.zeros((2, 16, 16, 3), dtype=np.uint8))  # uint8, but the wrong shape
    with pytest.warns(UserWarning, match=r"holds uint8 \(2, 16, 16, 3\), not uint8 \(3, 16"):
        again = SyntheticFER("test", num_samples=3, img_size=16, cache_dir=str(where))
    assert np.array_equal(_arr(again, 2), _arr(SyntheticFER("test", num_samples=3,
                                                            img_size=16), 2))


def test_a_subset_then_a_cache_holds_the_subset(tmp_path):
    lst = tmp_path / "sub.txt"
    lst.write_text("synthetic_000001\nsynthetic_000004\n")
    full = SyntheticFER("test", num_samples=6, img_size=16)
    ds = SyntheticFER("test", num_samples=6, img_size=16, subset=str(lst),
                      cache_dir=str(tmp_path / "cache"))
    assert ds.targets == [full.targets[1], full.targets[4]]
    assert np.array_equal(_arr(ds, 0), _arr(full, 1)) and np.array_equal(_arr(ds, 1),
                                                                           _arr(full, 4))
