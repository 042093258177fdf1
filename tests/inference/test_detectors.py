"""Face detectors on real photographs (scikit-image's astronaut and LFW subset)."""

import sys

import numpy as np
import pytest
from PIL import Image

from pyg_fer.inference import Detection, build_detector, reading_order

from .conftest import ASTRONAUT_FACE, centre_in, iou

cv2 = pytest.importorskip("cv2")


def test_haar_finds_the_astronauts_face(astronaut):
    dets = build_detector("haar").detect(astronaut)
    assert len(dets) == 1
    assert centre_in(dets[0].box, ASTRONAUT_FACE) and iou(dets[0].box, ASTRONAUT_FACE) > 0.5
    assert dets[0].score >= 1 and dets[0].landmarks is None


def test_haar_separates_lfw_faces_from_non_faces(lfw):
    """LFW crops upscaled from 25 to 100 px: measured once at 89/100 faces and 1/100 non-faces
    detected (min_neighbors=3); the bounds leave room for OpenCV version differences."""
    images, is_face = lfw
    det = build_detector("haar", min_neighbors=3, min_face_size=24)
    found = []
    for x in images:
        gray = np.asarray(Image.fromarray((x * 255).round().astype(np.uint8)).resize(
            (100, 100), Image.BICUBIC))
        found.append(len(det.detect(np.repeat(gray[:, :, None], 3, axis=2))) > 0)
    found = np.array(found)
    assert found[is_face].sum() >= 80 and found[~is_face].sum() <= 5


def test_haar_keeps_min_face_size_on_a_large_photo(astronaut):
    # a ~60 px face (min_face_size 32) in a 3600 px photo: shrinking to max_side=1280 alone
    # would make it 21 px, below the cascade's 24 px window
    import skimage.data

    face = np.asarray(Image.fromarray(astronaut).resize((307, 307), Image.LANCZOS))
    canvas = np.tile(skimage.data.coffee(), (7, 6, 1))[:2700, :3600].copy()  # no face
    canvas[900:1207, 1500:1807] = face
    found = build_detector("haar").detect(canvas)
    x, y, w, h = (v * 307 / 512 for v in ASTRONAUT_FACE)
    assert len(found) == 1 and iou(found[0].box, (1500 + x, 900 + y, w, h)) > 0.4, found


def test_haar_thresholds_are_arguments(astronaut):
    assert build_detector("haar", min_face_size=200).detect(astronaut) == []
    with pytest.raises(ValueError, match="scale_factor"):
        build_detector("haar", scale_factor=1.0)
    tiny = np.zeros((1, 1, 3), np.uint8)
    assert build_detector("haar").detect(tiny) == []
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        build_detector("haar").detect(np.zeros((8, 8), np.uint8))


def test_reading_order_rows_then_left_to_right():
    boxes = [(300, 12, 50, 50), (10, 0, 50, 50), (150, 200, 40, 40), (5, 190, 60, 60)]
    order = reading_order([Detection(b) for b in boxes])
    assert [d.box for d in order] == [boxes[1], boxes[0], boxes[3], boxes[2]]
    # a large near face on the left beside a small far one on the right: one row, left first,
    # whichever centre is higher
    boxes = [(200, 50, 20, 20), (0, 0, 100, 200)]
    assert [d.box for d in reading_order([Detection(b) for b in boxes])] == boxes[::-1]
    boxes = [(0, 50, 20, 20), (100, 0, 100, 200)]
    assert [d.box for d in reading_order([Detection(b) for b in boxes])] == boxes


def test_none_detector_is_the_whole_image_and_rejects_options():
    assert build_detector("none").detect(np.zeros((7, 9, 3), np.uint8)) == [
        Detection((0, 0, 9, 7), None)]
    with pytest.raises(ValueError, match="takes no options"):
        build_detector("none", min_face_size=3)
    with pytest.raises(ValueError, match="unknown detector 'mtcnn'"):
        build_detector("mtcnn")
    with pytest.raises(ValueError, match="no detect"):
        build_detector(object())


def test_yunet_needs_an_existing_valid_onnx_file(tmp_path):
    with pytest.raises(ValueError, match="needs the path of a YuNet ONNX model"):
        build_detector("yunet")
    with pytest.raises(FileNotFoundError, match="nowhere.onnx"):
        build_detector("yunet", tmp_path / "nowhere.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a network")
    with pytest.raises(ValueError, match="bad.onnx"):
        build_detector("yunet", bad)


def test_missing_opencv_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    with pytest.raises(ImportError, match=r"pyg-fer\[predict\]"):
        build_detector("haar")
    assert build_detector("none").detect(np.zeros((2, 2, 3), np.uint8))  # needs no OpenCV


FAKE_YUNET = __import__("pathlib").Path(__file__).with_name("fake_yunet.onnx")


def _red_squares(h, w, corners, side=32):
    img = np.zeros((h, w, 3), np.uint8)
    for x, y in corners:
        img[y:y + side, x:x + side] = (255, 0, 0)  # RGB red
    return img


def test_yunet_wiring_with_a_stand_in_network():
    """``fake_yunet.onnx`` (see ``_fake_yunet.py``) marks red 32-px grid cells as faces with
    score 1 and all five landmarks at the cell centre; it sees red only in BGR order."""
    det = build_detector("yunet", FAKE_YUNET, score_threshold=0.5)
    for h, w in ((128, 160), (200, 300)):  # the input size is set per image
        img = _red_squares(h, w, [(96, 64), (32, 32)])
        found = det.detect(img)
        assert sorted(d.box for d in found) == [(32, 32, 32, 32), (96, 64, 32, 32)]
        assert all(d.score == pytest.approx(1.0) for d in found)
        assert all(d.landmarks == ((d.box[0] + 16.0, d.box[1] + 16.0),) * 5 for d in found)
    blue = _red_squares(128, 160, [(96, 64)])[:, :, ::-1].copy()  # the same square in blue
    assert det.detect(blue) == []
    assert build_detector("yunet", FAKE_YUNET, min_face_size=40).detect(
        _red_squares(128, 160, [(96, 64)])) == []
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        build_detector("yunet", FAKE_YUNET, score_threshold=2)


def test_yunet_boxes_are_clamped_to_the_image():
    class Net:  # a network that reports faces running off the image's edges
        def setInputSize(self, size):
            pass

        def detect(self, image):
            rows = np.zeros((2, 15), np.float32)
            rows[0, :4] = (150, 80, 60, 40)  # off the right and the bottom of 200 × 100
            rows[1, :4] = (-10, -5, 30, 20)  # off the left and the top
            rows[:, 14] = 0.9
            return 1, rows

    det = build_detector("yunet", FAKE_YUNET)
    det._net = Net()
    found = det.detect(np.zeros((100, 200, 3), np.uint8))
    assert [d.box for d in found] == [(150, 80, 50, 20), (0, 0, 20, 15)]


def test_haar_shrinks_large_photos_and_maps_boxes_back(astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((2048, 2048), Image.BICUBIC))
    # faces of 96 px and more: the 2048 px photo may be searched at 512 px (96 / 4 = 24)
    (det,) = build_detector("haar", max_side=512, min_face_size=96).detect(big)
    x, y, w, h = ASTRONAUT_FACE
    assert iou(det.box, (4 * x, 4 * y, 4 * w, 4 * h)) > 0.5
