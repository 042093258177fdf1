"""``Predictor.from_onnx``: onnxruntime forward, preprocessing from the ONNX metadata."""

import numpy as np
import pytest
import torch

import pyg_fer
from pyg_fer.export import to_onnx
from pyg_fer.inference import Predictor

pytest.importorskip("onnxruntime")


def test_from_onnx_matches_the_torch_predictor(tmp_path):
    torch.manual_seed(0)
    model = pyg_fer.create_model("resnet18_fer", img_size=32, num_classes=3,
                                 class_names=["x", "y", "z"], mean=(0.5,) * 3,
                                 std=(0.25,) * 3).eval()
    path = to_onnx(model, tmp_path / "m.onnx")
    onnx_pred = Predictor.from_onnx(path, detector="none", batch_size=2, threads=1)
    assert onnx_pred.class_names == ["x", "y", "z"] and onnx_pred.img_size == 32
    assert onnx_pred.mean == [0.5] * 3 and onnx_pred.std == [0.25] * 3
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for _ in range(3)]
    got = onnx_pred.predict(images, channel_order="rgb")
    ref = Predictor(model, detector="none", batch_size=2).predict(images, channel_order="rgb")
    assert [r.label for r in got] == [r.label for r in ref]
    for a, b in zip(got, ref, strict=True):
        assert np.allclose(list(a.probs.values()), list(b.probs.values()), atol=1e-4)


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
