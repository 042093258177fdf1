"""ONNX / torch.export parity for every registered model, at a small size, on CPU."""

import json

import numpy as np
import pytest
import torch

import pyg_fer
from pyg_fer.export import export_metadata, read_onnx_metadata, to_onnx, to_torch_export

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SMALL = dict(embed_dim=64, depth=2, grid_size=4, k=4)
SMALL_KWARGS = {
    "resnet18_fer": {},
    "agfn_resnet18": {"feature_dim": 32},
    "baseline_gcn_resnet18": {"feature_dim": 32},
}
IMG = 48
CLASSES = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]


def small(name):
    torch.manual_seed(0)
    kwargs = dict(SMALL_KWARGS.get(name, SMALL), img_size=IMG, class_names=CLASSES)
    return pyg_fer.create_model(name, **kwargs).eval()


def probs(logits):
    return torch.as_tensor(logits).softmax(-1)


@pytest.mark.parametrize("name", pyg_fer.list_models())
def test_onnx_parity_dynamic_batch_and_metadata(name, tmp_path):
    model = small(name)
    path = to_onnx(model, tmp_path / f"{name}.onnx", batch="dynamic")
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.onnx"]  # no temp file left
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1)
    for batch in (1, 5):  # one file, two batch sizes
        x = torch.randn(batch, 3, IMG, IMG, generator=gen)
        with torch.no_grad():
            ref = probs(model(x))
        got = probs(session.run(["logits"], {"images": x.numpy()})[0])
        assert got.shape == (batch, 7)
        assert (got - ref).abs().max().item() <= 1e-4
        assert torch.equal(got.argmax(1), ref.argmax(1))

    meta = read_onnx_metadata(path)
    assert meta["model"] == name and meta["version"] == pyg_fer.__version__
    assert meta["class_names"] == CLASSES
    assert meta["input_size"] == [3, IMG, IMG]
    assert meta["mean"] == list(model.cfg["mean"]) and meta["std"] == list(model.cfg["std"])
    assert meta["card"]["name"] == name


def test_onnx_fixed_batch_rejects_other_sizes(tmp_path):
    model = small("resnet18_fer")
    path = to_onnx(model, tmp_path / "m.onnx", batch=3)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, IMG, IMG)
    with torch.no_grad():
        ref = probs(model(x))
    got = probs(session.run(None, {"images": x.numpy()})[0])
    assert (got - ref).abs().max().item() <= 1e-4
    with pytest.raises(Exception, match="(?i)dimension"):  # onnxruntime's own type
        session.run(None, {"images": np.zeros((2, 3, IMG, IMG), np.float32)})


def test_onnx_refuses_an_opset_it_cannot_give(tmp_path):
    # the exporter writes its own opset (18) with a traceback when it cannot convert: the
    # requested opset must not be silently ignored
    with pytest.raises(RuntimeError, match="gave opset 18, not the requested 13"):
        to_onnx(small("resnet18_fer"), tmp_path / "m13.onnx", opset=13)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["resnet18_fer", "face2nodes"])
def test_torch_export_round_trip(name, tmp_path, caplog):
    model = small(name)
    path = to_torch_export(model, tmp_path / f"{name}.pt2")
    assert "ending in .pt2" not in caplog.text  # the temporary archive is named *.pt2 too
    extra = {"pyg_fer.json": ""}
    loaded = torch.export.load(str(path), extra_files=extra)
    assert json.loads(extra["pyg_fer.json"]) == export_metadata(model)
    for batch in (1, 4):
        x = torch.randn(batch, 3, IMG, IMG)
        with torch.no_grad():
            assert torch.allclose(loaded.module()(x), model(x), atol=1e-5)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="batch must be 'dynamic' or a positive int"):
        to_onnx(small("resnet18_fer"), tmp_path / "m.onnx", batch=0)
    with pytest.raises(ValueError, match="has no 'cfg'"):
        to_onnx(torch.nn.Linear(2, 2), tmp_path / "m.onnx")
    # the file takes float32 images: a half or double model would export a file that no
    # runtime loads, so it is refused, and nothing is written
    for convert, dtype in ((torch.nn.Module.double, "torch.float64"),
                           (torch.nn.Module.bfloat16, "torch.bfloat16")):
        model = convert(small("resnet18_fer"))
        for export, path in ((to_onnx, tmp_path / "h.onnx"), (to_torch_export, tmp_path / "h.pt2")):
            with pytest.raises(ValueError, match=rf"float32 model; this one holds {dtype} "
                                                 r"tensors: call model.float\(\) first"):
                export(model, path)
            assert not path.exists()
    bare = tmp_path / "bare.onnx"
    import onnx
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), str(bare))
    with pytest.raises(ValueError, match="carries no pyg-fer metadata"):
        read_onnx_metadata(bare)


def test_missing_package_names_the_extra(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "onnxscript":
            raise ImportError("No module named 'onnxscript'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install 'pyg-fer\[export\]'"):
        to_onnx(small("resnet18_fer"), tmp_path / "m.onnx")


def test_torch_export_of_a_model_in_training_mode_is_its_evaluation_forward(tmp_path):
    model = small("resnet18_fer").train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
    x = torch.randn(4, 3, IMG, IMG)
    loaded = torch.export.load(str(to_torch_export(model, tmp_path / "m.pt2", batch=4)))
    with torch.no_grad():
        torch.testing.assert_close(loaded.module()(x), model.eval()(x), atol=1e-5, rtol=0)
