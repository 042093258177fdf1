"""`pyg-fer export CKPT --format onnx|torch-export`."""

import pytest
import torch

import pyg_fer
from pyg_fer.cli import main
from pyg_fer.engine import save_checkpoint
from pyg_fer.export import read_onnx_metadata

ort = pytest.importorskip("onnxruntime")


def test_cli_export_onnx_and_torch_export(tmp_path, capsys):
    torch.manual_seed(0)
    model = pyg_fer.create_model("face2nodes", img_size=48, embed_dim=32, depth=1, grid_size=4,
                                 k=4, num_classes=3, class_names=["a", "b", "c"]).eval()
    save_checkpoint(model, tmp_path / "best")
    assert main(["export", str(tmp_path / "best.json")]) == 0  # default: beside the card
    assert "-> " in capsys.readouterr().out
    meta = read_onnx_metadata(tmp_path / "best.onnx")
    assert meta["class_names"] == ["a", "b", "c"] and meta["model"] == "face2nodes"
    session = ort.InferenceSession(str(tmp_path / "best.onnx"),
                                   providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        ref = model(x).softmax(1)
    got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0]).softmax(1)
    assert (got - ref).abs().max() <= 1e-4

    out = tmp_path / "m.pt2"
    assert main(["export", str(tmp_path / "best.json"), "--format", "torch-export",
                 "--out", str(out), "--batch", "2"]) == 0
    with torch.no_grad():
        assert torch.allclose(torch.export.load(str(out)).module()(x), model(x), atol=1e-5)


def test_cli_export_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "x.json"), "--batch", "many"]) == 2
    assert "--batch must be 'dynamic' or an int" in capsys.readouterr().err
