"""Annotated copies: the pixels a box and its label change, file names, one video per input."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pyg_fer.inference import FaceRecord
from pyg_fer.inference.annotate import AnnotationSink, draw_records

GREY = (128, 128, 128)


def _changed(image):
    return (np.asarray(image) != GREY[0]).any(axis=2)


def test_a_box_is_drawn_on_its_edge_pixels_only():
    grey = Image.new("RGB", (400, 300), GREY)
    out = draw_records(grey, [FaceRecord("a.jpg", error="not an image"),  # nothing to draw
                              FaceRecord("a.jpg", face=0, box=(50, 60, 40, 30))])
    expected = np.zeros((300, 400), bool)
    expected[60:90, 50:90] = True  # x 50..89, y 60..89
    expected[62:88, 52:88] = False  # lines round(min(400, 300) / 200) = 2 pixels wide
    assert (_changed(out) == expected).all()
    assert (np.asarray(out)[expected] == (0, 230, 64)).all()
    assert not _changed(grey).any()  # a copy is drawn on


def test_the_label_goes_above_the_box_or_below_it_at_the_top(monkeypatch):
    texts = []
    real = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text",
                        lambda self, xy, text, *a, **kw: texts.append(text) or
                        real(self, xy, text, *a, **kw))
    grey = Image.new("RGB", (400, 300), GREY)
    probs = {"happy": 0.8671, "sad": 0.1329}

    def rows(record):
        return np.nonzero(_changed(draw_records(grey, [record])).any(axis=1))[0]

    above = rows(FaceRecord("a.jpg", box=(50, 60, 40, 30), probs=probs, label="happy"))
    assert texts == ["happy 0.87"]
    assert above.min() < 60 and above.max() == 89  # the label sits on the box's top edge
    below = rows(FaceRecord("a.jpg", box=(50, 5, 40, 30), probs=probs, label="sad"))
    assert texts == ["happy 0.87", "sad 0.13"]
    assert below.min() == 5 and below.max() > 35  # no room above: under the box


def test_annotated_images_are_named_after_their_inputs(tmp_path):
    sink = AnnotationSink(tmp_path / "ann")
    image = Image.new("RGB", (8, 8), GREY)
    sources = ["a/face.jpg", "b/face.jpg", "c/face.jpeg", "shots/B.PNG", "<input 3, image 12>",
               "<input 3, image 12>"]
    assert [sink.image(s, image, []).name for s in sources] == [
        "face.jpg", "face_1.jpg", "face_2.jpg", "B.png", "input_3_12.png", "input_3_12_1.png"]
    with Image.open(tmp_path / "ann" / "B.png") as png, \
            Image.open(tmp_path / "ann" / "face.jpg") as jpg:
        assert png.format == "PNG" and jpg.format == "JPEG"


def test_each_video_gets_its_own_file_and_a_discarded_one_leaves_nothing(tmp_path):
    cv2 = pytest.importorskip("cv2")

    def frames(path):
        cap, n = cv2.VideoCapture(str(path)), 0
        while cap.grab():
            n += 1
        cap.release()
        return n

    sink = AnnotationSink(tmp_path)
    frame = Image.new("RGB", (64, 64), GREY)
    for source, n in (("a.avi", 2), ("b.mkv", 3)):
        for _ in range(n):
            sink.video_frame(source, 5.0, frame, [])
    assert sink.close_video() == tmp_path / "b.mp4"
    sink.video_frame("b.mkv", 5.0, frame, [])  # the same input again, e.g. listed twice
    assert sink.close_video() == tmp_path / "b_1.mp4"
    assert [frames(tmp_path / n) for n in ("a.avi", "b.mp4", "b_1.mp4")] == [2, 3, 1]
    sink.video_frame("c.avi", 5.0, frame, [])
    with pytest.raises(ValueError, match=r"video frame of size \(32, 32\) in a video of size "
                                         r"\(64, 64\)"):
        sink.video_frame("c.avi", 5.0, Image.new("RGB", (32, 32)), [])
    sink.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.avi", "b.mp4", "b_1.mp4"]
