"""From a photo, a folder or a video to facial expressions: detection, a predictor, records.

Entry point: :class:`Predictor` (``Predictor.from_checkpoint(path)`` or ``Predictor(model)``),
whose ``predict(inputs)`` returns one :class:`FaceRecord` per face. Face detection and video
need OpenCV: ``pip install 'pyg-fer[predict]'``. Importing this package does not import torch:
``Predictor.from_onnx`` runs an exported model without it. See ``docs/inference.md``.
"""

from pyg_fer.inference.detectors import (
    DETECTORS,
    Detection,
    FaceDetector,
    HaarDetector,
    WholeImage,
    YuNetDetector,
    build_detector,
    reading_order,
    square_crop_box,
)
from pyg_fer.inference.onnx_model import OnnxModel
from pyg_fer.inference.predictor import (
    FaceError,
    FaceTransform,
    Predictor,
    RunSummary,
    summary_line,
)
from pyg_fer.inference.records import (
    FaceRecord,
    RecordWriter,
    to_csv,
    to_dicts,
    to_jsonl,
    write_records,
)
from pyg_fer.inference.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

__all__ = [
    "DETECTORS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Detection",
    "FaceDetector",
    "FaceError",
    "FaceTransform",
    "FaceRecord",
    "HaarDetector",
    "OnnxModel",
    "Predictor",
    "RecordWriter",
    "RunSummary",
    "WholeImage",
    "YuNetDetector",
    "build_detector",
    "reading_order",
    "square_crop_box",
    "summary_line",
    "to_csv",
    "to_dicts",
    "to_jsonl",
    "write_records",
]
