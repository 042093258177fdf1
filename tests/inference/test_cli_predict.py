"""`pyg-fer predict`: a thin wrapper over Predictor; records to JSONL/CSV, summary, exit code."""

import json

import numpy as np
import pytest
from PIL import Image

from pyg_fer.cli import main

from .conftest import ASTRONAUT_FACE, CLASSES, iou

pytest.importorskip("cv2")


def test_predict_writes_jsonl_and_csv_with_a_summary(tmp_path, checkpoint, astronaut, capsys):
    Image.fromarray(astronaut).save(tmp_path / "astro.jpg")
    Image.new("RGB", (64, 64), (30, 60, 90)).save(tmp_path / "blank.png")
    (tmp_path / "bad.png").write_text("no")
    inputs = [str(tmp_path / n) for n in ("astro.jpg", "blank.png", "bad.png")]
    out = tmp_path / "out" / "r.jsonl"
    rc = main(["predict", str(checkpoint), *inputs, "--out", str(out), "--device", "cpu",
               "--annotate", str(tmp_path / "ann")])
    assert rc == 1  # one input unreadable; the others are predicted
    captured = capsys.readouterr()
    assert captured.out.startswith("1 face in 3 images and 0 video frames (1 without a face, "
                                   "1 unreadable) in ") and str(out) in captured.out
    assert "bad.png" in captured.err
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["source"] for r in recs] == inputs
    assert iou(recs[0]["box"], ASTRONAUT_FACE) > 0.5 and list(recs[0]["probs"]) == CLASSES
    assert recs[1]["box"] is None and "bad.png" in recs[2]["error"]
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["astro.jpg", "blank.png"]
    csv_out = tmp_path / "r.csv"
    assert main(["predict", str(checkpoint), inputs[0], "--out", str(csv_out),
                 "--device", "cpu"]) == 0
    header, row = csv_out.read_text().splitlines()
    assert header.startswith("source,frame,time,face,x,y,w,h") and row.startswith(inputs[0])


def test_predict_usage_errors_exit_2(tmp_path, checkpoint, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    assert main(["predict", str(checkpoint), str(img), "--out", str(tmp_path / "r.txt")]) == 2
    assert "must end in .jsonl or .csv" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "none.json"), str(img)]) == 2
    assert "none.json" in capsys.readouterr().err
    assert main(["predict", str(checkpoint), str(img), "--detector", "yunet"]) == 2
    assert "YuNet ONNX model" in capsys.readouterr().err
    assert (tmp_path / "r.txt").exists() is False


def test_predict_with_yunet_model(tmp_path, checkpoint, capsys):
    from .test_detectors import FAKE_YUNET, _red_squares

    Image.fromarray(_red_squares(128, 160, [(96, 64)])).save(tmp_path / "red.png")
    assert main(["predict", str(checkpoint), str(tmp_path / "red.png"), "--detector", "yunet",
                 "--detector-model", str(FAKE_YUNET), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'red.png'} [96,64,32,32]: ")


def test_predict_without_opencv_names_the_extra(tmp_path, checkpoint, capsys, monkeypatch):
    import sys

    img = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(img)
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    assert main(["predict", str(checkpoint), str(img), "--device", "cpu"]) == 2
    assert "pip install 'pyg-fer[predict]'" in capsys.readouterr().err
    # face crops need no OpenCV
    assert main(["predict", str(checkpoint), str(img), "--detector", "none"]) == 0
