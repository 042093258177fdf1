"""``Predictor.from_onnx``: onnxruntime forward, preprocessing from the ONNX metadata."""

import numpy as np
import pytest
import torch

import pyg_fer
from pyg_fer.export import to_onnx
from pyg_fer.inference import Predictor

pytest.importorskip("onnxruntime")


def _assert_same_predictions(onnx_pred, model, num_images, seed):
    """The ONNX predictor and the torch predictor (same batch size) agree image by image."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for _ in range(num_images)]
    got = onnx_pred.predict(images, channel_order="rgb")
    ref = Predictor(model, detector="none", batch_size=onnx_pred.batch_size).predict(
        images, channel_order="rgb")
    assert [(r.source, r.label) for r in got] == [(r.source, r.label) for r in ref]
    for a, b in zip(got, ref, strict=True):
        assert np.allclose(list(a.probs.values()), list(b.probs.values()), atol=1e-4)


def test_from_onnx_matches_the_torch_predictor(tmp_path):
    torch.manual_seed(0)
    model = pyg_fer.create_model("resnet18_fer", img_size=32, num_classes=3,
                                 class_names=["x", "y", "z"], mean=(0.5,) * 3,
                                 std=(0.25,) * 3).eval()
    path = to_onnx(model, tmp_path / "m.onnx")
    onnx_pred = Predictor.from_onnx(path, detector="none", batch_size=2, threads=1)
    assert onnx_pred.class_names == ["x", "y", "z"] and onnx_pred.img_size == 32
    assert onnx_pred.mean == [0.5] * 3 and onnx_pred.std == [0.25] * 3
    _assert_same_predictions(onnx_pred, model, num_images=3, seed=0)


@pytest.mark.parametrize("batch", [1, 2])
def test_from_onnx_runs_a_fixed_batch_file_on_any_number_of_faces(tmp_path, batch):
    # batch_size 3 against a file fixed at 1 or 2 faces: chunks of the file's batch, the last
    # one padded; every image keeps its own prediction
    torch.manual_seed(0)
    model = pyg_fer.create_model("resnet18_fer", img_size=32, num_classes=3,
                                 class_names=["x", "y", "z"]).eval()
    path = to_onnx(model, tmp_path / "fixed.onnx", batch=batch)
    onnx_pred = Predictor.from_onnx(path, detector="none", batch_size=3, threads=1)
    assert onnx_pred.model.batch == batch
    _assert_same_predictions(onnx_pred, model, num_images=5, seed=1)
    # called directly too: one row per image, the padding's rows dropped
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(onnx_pred.model(x.numpy()), expected, atol=1e-4, rtol=0)


def test_from_onnx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        Predictor.from_onnx(tmp_path / "missing.onnx", detector="none")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["b"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
              str(tmp_path / "foreign.onnx"))
    with pytest.raises(ValueError, match="carries no pyg-fer metadata"):
        Predictor.from_onnx(tmp_path / "foreign.onnx", detector="none")


_NO_TORCH = """
import json, sys

class Block:  # any torch import fails, as on a machine without torch
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "torch_geometric", "torch_cluster",
                                  "torch_scatter"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, Block())
from pyg_fer.inference import Predictor, to_dicts

predictor = Predictor.from_onnx(sys.argv[1], detector="haar", threads=1)
records = predictor.predict([sys.argv[2], sys.argv[3]])
assert not any(m.split(".")[0] == "torch" for m in sys.modules), "torch was imported"
print(json.dumps(to_dicts(records)))
"""


def test_from_onnx_predicts_without_torch(tmp_path):
    """A deployment with onnxruntime, NumPy, Pillow and OpenCV but no torch: detection,
    preprocessing and records match the torch predictor on a real photograph."""
    import json
    import subprocess
    import sys

    pytest.importorskip("cv2")
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    torch.manual_seed(0)
    model = pyg_fer.create_model("resnet18_fer", img_size=32).eval()
    onnx_path = to_onnx(model, tmp_path / "m.onnx")
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    script = tmp_path / "run.py"
    script.write_text(_NO_TORCH)
    out = subprocess.run([sys.executable, str(script), str(onnx_path), str(photo),
                          str(tmp_path / "broken.jpg")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    ref = Predictor(model, detector="haar").predict([photo, tmp_path / "broken.jpg"])
    assert len(got) == len(ref) == 2
    face, broken = got
    assert face["box"] == list(ref[0].box) and face["label"] == ref[0].label
    assert np.allclose(list(face["probs"].values()), list(ref[0].probs.values()), atol=1e-4)
    assert broken["error"] == ref[1].error and "broken.jpg" in broken["error"]
