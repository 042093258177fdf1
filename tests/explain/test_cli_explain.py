"""`pyg-fer explain` and explain_images: PNGs per face and method, bad inputs."""

import numpy as np
import pytest
import torch
from PIL import Image

from pyg_fer import create_model
from pyg_fer.cli import main
from pyg_fer.engine import save_checkpoint
from pyg_fer.explain import explain_images, resolve_target

from .conftest import CLASSES, tiny_graph_model


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    stem = tmp_path / "ckpt" / "best"
    save_checkpoint(tiny_graph_model(calibrate=True), stem)
    return stem.with_suffix(".json")


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "in" / "face.png"
    good.parent.mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(good)
    bad = tmp_path / "in" / "bad.jpg"
    bad.write_text("not an image")
    return good, bad


def _png(path):
    with Image.open(path) as im:
        im.load()
        return im.format, im.size


def test_every_method_writes_pngs_of_the_expected_size(tmp_path, checkpoint, photos, capsys):
    good, bad = photos
    out = tmp_path / "out"
    rc = main(["explain", str(checkpoint), str(good), str(bad), str(tmp_path / "missing.png"),
               "--method", "gradcam", "gradcam++", "graph", "gnnexplainer", "--block", "1",
               "--class", "sad", "--size", "64", "--top", "3", "--epochs", "10",
               "--out", str(out)])
    assert rc == 1  # two inputs failed, the good one was explained
    captured = capsys.readouterr()
    assert "bad.jpg" in captured.err and "missing.png" in captured.err
    assert "1 face explained, 2 inputs failed" in captured.err
    assert captured.out.startswith(f"{good}: ") and "explained sad -> " in captured.out
    expected = {"face_gradcam_b1.png": (64, 64), "face_gradcampp_b1.png": (64, 64),
                "face_graph_b1.png": (64, 64), "face_gnnexplainer_b1.png": (64, 64),
                "face_neighbourhood_b1.png": (96, 96 + 20)}  # blocks 1..--block only
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)  # no temporary files
    for name, size in expected.items():
        assert _png(out / name) == ("PNG", size), name


def test_default_is_gradcam_on_the_last_block(tmp_path, checkpoint, photos, capsys):
    good, _ = photos
    assert main(["explain", str(checkpoint), str(good.parent / "face.png"), "--out",
                 str(tmp_path / "o")]) == 0
    assert _png(tmp_path / "o" / "face_gradcam_b2.png") == ("PNG", (224, 224))
    line = capsys.readouterr().out
    label = line.split(": ")[1].split(" (")[0]
    assert label in CLASSES and f"explained {label} -> " in line  # the predicted class


@pytest.mark.parametrize("args, message", [
    (["--block", "3"], "block=3 is out of range"),
    (["--block", "0"], "block=0 is out of range"),
    (["--class", "joy"], "unknown class name 'joy'; the checkpoint's classes are "
                         "['anger', 'happy', 'sad']"),
    (["--class", "7"], "class index 7 is out of range 0..2"),
    (["--method", "graph", "--node", "16"], "node=16 is out of range"),
    (["--method", "graph", "--top", "17"], "top=17 exceeds the 16 nodes"),
    (["--method", "gradcam", "gnnexplainer", "--top", "49"],
     "top=49 exceeds the 48 edges of face2nodes_stem's block graph"),
])
def test_bad_arguments_exit_2_before_any_work(tmp_path, checkpoint, photos, capsys, args,
                                              message):
    good, _ = photos
    out = tmp_path / "never"
    assert main(["explain", str(checkpoint), str(good), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_checkpoint_and_cnn_methods(tmp_path, photos, capsys):
    good, _ = photos
    assert main(["explain", str(tmp_path / "none.json"), str(good)]) == 2
    assert "none.json" in capsys.readouterr().err
    from pyg_fer.inference import Predictor

    cnn = create_model("resnet18_fer", num_classes=3, img_size=32, class_names=CLASSES)
    predictor = Predictor(cnn, detector="none")
    with pytest.raises(ValueError, match=r"need a graph model .* resnet18_fer is a CNN"):
        explain_images(predictor, [good], tmp_path / "o", methods=["graph"])
    results = list(explain_images(predictor, [good], tmp_path / "o", methods=["gradcam"],
                                  block=3, size=32))
    assert [r.files[0].name for r in results] == ["face_gradcam_b3.png"]
    assert _png(results[0].files[0]) == ("PNG", (32, 32))
    assert resolve_target("happy", CLASSES) == 1 and resolve_target(None, CLASSES) is None


def test_detect_explains_each_face(tmp_path, checkpoint, capsys):
    pytest.importorskip("cv2")
    data = pytest.importorskip("skimage.data")
    Image.fromarray(data.astronaut()).save(tmp_path / "astro.png")
    Image.new("RGB", (64, 64), (30, 60, 90)).save(tmp_path / "blank.png")
    out = tmp_path / "out"
    rc = main(["explain", str(checkpoint), str(tmp_path / "astro.png"), str(tmp_path / "blank.png"),
               "--detect", "--size", "48", "--out", str(out)])
    assert rc == 1  # the blank image holds no face
    captured = capsys.readouterr()
    assert "blank.png: no face found" in captured.err
    assert captured.out.startswith(f"{tmp_path / 'astro.png'} face 0: ")
    assert [p.name for p in out.iterdir()] == ["astro_face0_gradcam_b2.png"]
    assert _png(out / "astro_face0_gradcam_b2.png") == ("PNG", (48, 48))


def test_resolve_target_index_bounds():
    assert resolve_target(2, ["a", "b", "c"]) == 2 and resolve_target("0", ["a", "b", "c"]) == 0
    # one past the last class is out of range, not the last class
    with pytest.raises(ValueError, match=r"class index 3 is out of range 0\.\.2 "):
        resolve_target(3, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"class index 3 is out of range 0\.\.2 "):
        resolve_target("3", ["a", "b", "c"])
