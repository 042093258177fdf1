"""Face detectors behind one small protocol: ``detect(rgb) -> list[Detection]``.

* ``"haar"``: OpenCV's frontal-face Haar cascade, the XML file shipped inside
  ``opencv-python-headless`` 4.x (the 5.x wheels no longer ship it, hence the ``<5`` pin of the
  ``pyg-fer[predict]`` extra). Score: the number of raw detections merged into the box.
* ``"yunet"``: ``cv2.FaceDetectorYN`` with a YuNet ONNX file the user supplies (nothing is
  downloaded). Score: the detector's confidence in [0, 1]; five landmarks per face.
* ``"none"``: the input already is a face crop; the whole image is the one "face".

Any object with a ``detect(image: np.ndarray) -> list[Detection]`` method (``image`` an
``H×W×3`` RGB ``uint8`` array) can be passed where a detector is expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

PREDICT_EXTRA = "pip install 'pyg-fer[predict]'"
#: Face detectors by name: OpenCV's Haar cascade (ships with ``opencv-python-headless`` 4.x),
#: YuNet (an ONNX model file you provide), or none (the whole image is the one face).
DETECTORS = ("haar", "yunet", "none")


class Detection(NamedTuple):
    """One face: ``box`` ``(x, y, w, h)`` in pixels of the input image, the detector's
    ``score`` (``None`` where the detector gives none) and optional ``landmarks``
    (``[(x, y), ...]``)."""

    box: tuple[int, int, int, int]
    score: float | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None


@runtime_checkable
class FaceDetector(Protocol):
    """What the predictor needs from a detector."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (``H×W×3`` RGB ``uint8``), in any order."""
        ...


def import_cv2(purpose: str) -> Any:
    """``import cv2``, or an ImportError that names the ``pyg-fer[predict]`` extra."""
    try:
        import cv2
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs OpenCV, which is not installed; install the extra with: "
            f"{PREDICT_EXTRA}  (opencv-python-headless>=4.8,<5)"
        ) from err
    return cv2


def reading_order(detections: Sequence[Detection]) -> list[Detection]:
    """Sort faces as text is read: rows top to bottom, left to right within a row.

    Faces are taken by vertical centre; one joins the current row when its centre lies inside
    the row's first face, or that face's centre inside it. So two faces side by side read left
    to right, at slightly different heights or sizes (a near face beside a far one) alike.
    """
    def centre(box: tuple[int, int, int, int]) -> float:
        return box[1] + box[3] / 2

    rows: list[list[Detection]] = []
    for det in sorted(detections, key=lambda d: centre(d.box)):
        if rows:
            first, box = rows[-1][0].box, det.box
            if (first[1] <= centre(box) <= first[1] + first[3]
                    or box[1] <= centre(first) <= box[1] + box[3]):
                rows[-1].append(det)
                continue
        rows.append([det])
    return [det for row in rows for det in sorted(row, key=lambda d: d.box[0])]


def _check_rgb(image: np.ndarray, who: str) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3):
        raise ValueError(f"{who} expects an H×W×3 uint8 RGB array, got "
                         f"{getattr(image, 'shape', type(image))} "
                         f"{getattr(image, 'dtype', '')}".rstrip())


_HAAR_WINDOW = 24  # the frontal-face cascade's detection window, in pixels


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (``haarcascade_frontalface_default.xml``).

    Args:
        scale_factor: image pyramid step (default ``1.1``).
        min_neighbors: raw detections a face needs to be kept; higher = fewer false faces
            (default ``5``).
        min_face_size: smallest face side in pixels of the input image (default ``32``).
        max_side: images whose longer side exceeds this are searched on a copy shrunk to it
            (boxes are mapped back), which bounds the cost of large photos, but never shrunk so
            far that a ``min_face_size`` face falls below the cascade's 24-pixel window;
            ``None``: never shrink (default ``1280``).
        cascade: path of another cascade XML (default: the one shipped with OpenCV).
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_face_size: int = 32, max_side: int | None = 1280,
                 cascade: str | Path | None = None) -> None:
        cv2 = import_cv2("the 'haar' face detector")
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0 or min_face_size < 1 or (max_side is not None and max_side < 24):
            raise ValueError(f"min_neighbors must be >= 0, min_face_size >= 1 and max_side "
                             f">= 24, got {min_neighbors}, {min_face_size} and {max_side}")
        if cascade is None:
            data = getattr(cv2, "data", None)
            if data is None:
                raise ImportError(
                    f"this OpenCV ({cv2.__version__}) ships no Haar cascade files "
                    f"(cv2.data is missing; OpenCV 5 wheels dropped them); {PREDICT_EXTRA} "
                    "installs a 4.x wheel, or pass cascade=PATH")
            cascade = Path(data.haarcascades) / "haarcascade_frontalface_default.xml"
        cascade = Path(cascade)
        if not cascade.is_file():
            raise FileNotFoundError(f"Haar cascade '{cascade}' does not exist")
        self._cv2 = cv2
        self._classifier = cv2.CascadeClassifier(str(cascade))
        if self._classifier.empty():
            raise ValueError(f"'{cascade}' is not a Haar cascade OpenCV can load")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_face_size = int(min_face_size)
        self.max_side = None if max_side is None else int(max_side)

    def detect(self, image: np.ndarray) -> list[Detection]:
        _check_rgb(image, "HaarDetector.detect")
        cv2 = self._cv2
        h, w = image.shape[:2]
        if min(h, w) < self.min_face_size:
            return []
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        scale = 1.0
        if self.max_side is not None and max(h, w) > self.max_side:
            # never so far that a min_face_size face drops below the cascade's 24-px window
            scale = min(1.0, max(self.max_side / max(h, w), _HAAR_WINDOW / self.min_face_size))
        if scale < 1.0:
            gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                              interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_size = max(1, round(self.min_face_size * scale))
        rects, counts = self._classifier.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(min_size, min_size))
        counts = np.asarray(counts).reshape(-1)
        return [Detection(tuple(round(v / scale) for v in r), float(c))
                for r, c in zip(np.asarray(rects).reshape(-1, 4), counts, strict=True)]

    def __repr__(self) -> str:
        return (f"HaarDetector(scale_factor={self.scale_factor}, "
                f"min_neighbors={self.min_neighbors}, min_face_size={self.min_face_size}, "
                f"max_side={self.max_side})")


class YuNetDetector:
    """OpenCV's YuNet CNN detector (``cv2.FaceDetectorYN``) with a user-supplied ONNX file.

    Args:
        model: path of the YuNet ``.onnx`` file (e.g. ``face_detection_yunet_2023mar.onnx`` from
            the OpenCV model zoo; nothing is downloaded).
        score_threshold: minimum confidence (default ``0.8``).
        nms_threshold: IoU of non-maximum suppression (default ``0.3``).
        min_face_size: faces with a smaller side are dropped (default ``16``).
        top_k: boxes kept before NMS (default ``5000``).
    """

    def __init__(self, model: str | Path, score_threshold: float = 0.8,
                 nms_threshold: float = 0.3, min_face_size: int = 16, top_k: int = 5000) -> None:
        cv2 = import_cv2("the 'yunet' face detector")
        if model is None:
            raise ValueError("the 'yunet' detector needs the path of a YuNet ONNX model "
                             "(detector_model=... / --detector-model PATH)")
        model = Path(model)
        if not model.is_file():
            raise FileNotFoundError(f"YuNet model '{model}' does not exist")
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 <= nms_threshold <= 1.0:
            raise ValueError(f"score_threshold and nms_threshold must lie in [0, 1], got "
                             f"{score_threshold} and {nms_threshold}")
        if not hasattr(cv2, "FaceDetectorYN"):
            raise ImportError(f"OpenCV {cv2.__version__} has no FaceDetectorYN; "
                              f"{PREDICT_EXTRA} installs opencv-python-headless>=4.8")
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(model), "", (320, 320), float(score_threshold), float(nms_threshold),
                int(top_k))
        except cv2.error as err:
            raise ValueError(f"OpenCV cannot load '{model}' as a YuNet model: "
                             f"{str(err).strip().splitlines()[-1]}") from None
        self._cv2 = cv2
        self.model = model
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.min_face_size = int(min_face_size)

    def detect(self, image: np.ndarray) -> list[Detection]:
        _check_rgb(image, "YuNetDetector.detect")
        h, w = image.shape[:2]
        self._net.setInputSize((w, h))
        _, faces = self._net.detect(self._cv2.cvtColor(image, self._cv2.COLOR_RGB2BGR))
        out = []
        for row in np.zeros((0, 15)) if faces is None else faces:
            x, y, bw, bh = (float(v) for v in row[:4])
            if min(bw, bh) < self.min_face_size:
                continue
            x0, y0 = max(0, round(x)), max(0, round(y))
            x1, y1 = min(w, round(x + bw)), min(h, round(y + bh))
            if x1 <= x0 or y1 <= y0:
                continue
            marks = tuple((float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5))
            out.append(Detection((x0, y0, x1 - x0, y1 - y0), float(row[14]), marks))
        return out

    def __repr__(self) -> str:
        return (f"YuNetDetector('{self.model}', score_threshold={self.score_threshold}, "
                f"nms_threshold={self.nms_threshold}, min_face_size={self.min_face_size})")


class WholeImage:
    """The ``"none"`` detector: the input is a face crop, so the whole image is the face."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        return [Detection((0, 0, int(w), int(h)), None)]

    def __repr__(self) -> str:
        return "WholeImage()"


def square_crop_box(box: Sequence[float], margin: float) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the square around ``box`` ``(x, y, w, h)``: centred on
    it, side ``max(w, h) * (1 + 2 * margin)``. It may reach past the image; PIL's ``crop`` fills
    that part with black."""
    x, y, w, h = (float(v) for v in box)
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    left = round(x + w / 2 - side / 2)
    top = round(y + h / 2 - side / 2)
    return left, top, left + side, top + side



def build_detector(detector: str | FaceDetector = "haar", model: str | Path | None = None,
                   **options: Any) -> FaceDetector:
    """A detector from its name (``'haar'``, ``'yunet'``, ``'none'``) or an object with a
    ``detect`` method (returned as is). ``model``: the YuNet ONNX path; ``options``: the
    detector's thresholds (see :class:`HaarDetector`, :class:`YuNetDetector`)."""
    if not isinstance(detector, str):
        if not callable(getattr(detector, "detect", None)):
            raise ValueError(f"detector {detector!r} has no detect(image) method; give one of "
                             f"{DETECTORS} or an object with detect(rgb_array) -> [Detection]")
        return detector
    if detector == "haar":
        if model is not None:
            options.setdefault("cascade", model)
        return HaarDetector(**options)
    if detector == "yunet":
        return YuNetDetector(model, **options)
    if detector == "none":
        if options:
            raise ValueError(f"the 'none' detector takes no options, got {sorted(options)}")
        return WholeImage()
    raise ValueError(f"unknown detector {detector!r}; expected one of {DETECTORS}")
