"""Video: stride, timestamps, annotated output, streaming."""

import numpy as np
import pytest
from PIL import Image

from pyg_fer.inference import Predictor

from .conftest import ASTRONAUT_FACE, iou, tiny_model

cv2 = pytest.importorskip("cv2")

FPS = 5.0


def _write_clip(path, astronaut, n=11):
    """``n`` frames at 5 fps: the astronaut (256 px) sliding right 3 px a frame."""
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (320, 256))
    assert writer.isOpened()
    for i in range(n):
        frame = np.zeros((256, 320, 3), np.uint8)
        frame[:, 3 * i: 3 * i + 256] = small
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _count_frames(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def test_video_stride_timestamps_and_boxes(tmp_path, astronaut):
    clip = _write_clip(tmp_path / "clip.avi", astronaut)
    pred = Predictor(tiny_model(), device="cpu", batch_size=3)
    recs = pred.predict(clip, stride=3)
    assert [r.frame for r in recs] == [0, 3, 6, 9]
    assert [r.time for r in recs] == pytest.approx([0.0, 0.6, 1.2, 1.8])
    x, y, w, h = (v / 2 for v in ASTRONAUT_FACE)
    for r in recs:
        assert r.source == str(clip) and r.status == "face"
        assert iou(r.box, (x + 3 * r.frame, y, w, h)) > 0.5, r
    assert Predictor.count(pred.expand(clip), stride=3) == 4


def test_annotated_video_has_every_frame(tmp_path, astronaut):
    clip = _write_clip(tmp_path / "clip.avi", astronaut)
    pred = Predictor(tiny_model(), device="cpu", batch_size=2)
    recs = pred.predict([clip, astronaut], channel_order="rgb", stride=4,
                        annotate=tmp_path / "ann")
    assert [(r.source, r.frame) for r in recs] == [(str(clip), 0), (str(clip), 4),
                                                   (str(clip), 8), ("<input 1>", None)]
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["clip.avi", "input_1.png"]
    assert _count_frames(tmp_path / "ann" / "clip.avi") == 11


def test_annotated_video_keeps_its_colours(tmp_path):
    from pyg_fer.inference.annotate import AnnotationSink

    sink = AnnotationSink(tmp_path)
    for _ in range(3):  # pure red RGB frames: OpenCV writes BGR, so a missed swap turns blue
        sink.video_frame("clip.avi", 10.0, Image.new("RGB", (64, 64), (255, 0, 0)), [])
    path = sink.close_video()
    ok, bgr = cv2.VideoCapture(str(path)).read()
    assert ok
    red, green, blue = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).reshape(-1, 3).mean(0)
    assert red > 240 and green < 15 and blue < 15


def test_video_frames_are_streamed(tmp_path, astronaut, monkeypatch):
    """The first records come out after a batch of frames, not after the whole video."""
    import pyg_fer.inference.sources as sources

    clip = _write_clip(tmp_path / "clip.avi", astronaut, n=20)
    decoded = []
    real = sources.video_frames

    def counting(*args, **kwargs):
        for item in real(*args, **kwargs):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(sources, "video_frames", counting)
    it = Predictor(tiny_model(), device="cpu", detector="none", batch_size=2).predict_iter(clip)
    assert next(it).frame == 0 and len(decoded) <= 3
    assert [r.frame for r in it] == list(range(1, 20)) and len(decoded) == 20


def test_unreadable_video_is_an_error_record(tmp_path, astronaut):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    pred = Predictor(tiny_model(), device="cpu")
    recs = pred.predict([bad, astronaut, tmp_path / "gone.avi"], channel_order="rgb")
    assert recs[0].status == "error" and "broken.mp4" in recs[0].error
    assert recs[1].status == "face"
    assert recs[2].error == f"'{tmp_path / 'gone.avi'}' does not exist"


def test_truncated_video_ends_with_an_error_record_at_the_first_lost_frame(tmp_path, astronaut):
    clip = _write_clip(tmp_path / "clip.avi", astronaut)
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 5])  # the header still declares 11 frames
    decoded = _count_frames(cut)
    assert 0 < decoded < 11
    recs = Predictor(tiny_model(), device="cpu", detector="none").predict(cut)
    assert [r.frame for r in recs] == list(range(decoded)) + [decoded]
    assert all(r.status == "face" for r in recs[:-1]) and recs[-1].status == "error"
    assert f"decoding stopped at frame {decoded} of the 11" in recs[-1].error


def test_run_summary_does_not_count_an_unreadable_video_as_an_image():
    from pyg_fer.inference.predictor import RunSummary
    from pyg_fer.inference.records import FaceRecord

    summary = RunSummary()
    for rec in (FaceRecord("a.jpg", probs={"x": 1.0}, box=(0, 0, 1, 1), face=0, label="x"),
                FaceRecord("b.png", error="not an image"), FaceRecord("c.mp4", error="no video"),
                FaceRecord("d.avi", frame=0), FaceRecord("d.avi", frame=3, error="stopped")):
        summary.add(rec)
    assert summary.line(0.0).startswith("1 face in 2 images and 2 video frames (1 without a "
                                        "face, 3 unreadable)")
