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
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        SyntheticFER(**kw)


def test_picklable_for_dataloader_workers():
    import pickle

    ds = SyntheticFER("test", num_samples=5, img_size=32)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.targets == ds.targets and np.array_equal(_arr(clone, 4), _arr(ds, 4))
