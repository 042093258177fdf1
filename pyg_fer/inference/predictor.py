"""``Predictor``: from photos, videos, arrays or tensors to one record per face.

Pipeline per image or frame: decode (RGB, EXIF orientation) → detect faces (or take the user's
boxes, or the whole image) → square crop with a margin around each face → the checkpoint's own
evaluation transform (:class:`FaceTransform`: :func:`pyg_fer.data.build_transform`'s
evaluation transform in NumPy, with the input size and mean/std stored in the checkpoint) →
the model, with faces of several images batched together → softmax →
:class:`~pyg_fer.inference.records.FaceRecord`.

The module imports torch only for a torch model: with an exported ONNX file
(:meth:`Predictor.from_onnx`) it runs on NumPy, Pillow and onnxruntime alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pyg_fer._images import to_rgb
from pyg_fer.inference.annotate import AnnotationSink
from pyg_fer.inference.detectors import (
    Detection,
    FaceDetector,
    WholeImage,
    build_detector,
    reading_order,
    square_crop_box,
)
from pyg_fer.inference.onnx_model import OnnxModel
from pyg_fer.inference.records import FaceRecord
from pyg_fer.inference.sources import (
    Frame, _Input, count_frames, expand_inputs, is_video_path, iter_frames,
)


class FaceTransform:
    """pyg-fer's evaluation transform in NumPy: RGB → resize to ``img_size``² (bilinear,
    Pillow) → ``[0, 1]`` → ``(x - mean) / std``, as a float32 ``[3, H, W]`` array.

    The same operations in the same order and precision as
    ``pyg_fer.data.build_transform(False, img_size, mean=mean, std=std)`` (torchvision's
    ``Resize`` → ``ToTensor`` → ``Normalize``), bit for bit (tested), without torch.
    """

    def __init__(self, img_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.size = (int(img_size), int(img_size))
        self.mean = np.asarray(mean, dtype=np.float32)[:, None, None]
        self.std = np.asarray(std, dtype=np.float32)[:, None, None]

    def __call__(self, image: Image.Image) -> np.ndarray:
        im = to_rgb(image).resize(self.size[::-1], Image.BILINEAR)
        x = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / np.float32(255)
        return np.ascontiguousarray((x - self.mean) / self.std)

    def __repr__(self) -> str:
        return (f"FaceTransform(img_size={self.size[0]}, mean={self.mean.ravel().tolist()}, "
                f"std={self.std.ravel().tolist()})")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class FaceError(ValueError):
    """One image's faces cannot be had: a given box lies outside it, or the detector failed.
    A batch run records it for that image and goes on."""


@dataclass
class _Entry:
    """A frame after detection and cropping, waiting for the model."""

    frame: Frame
    detections: list[Detection] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    error: str | None = None


class Predictor:
    """Facial expressions of every face in photos, videos, arrays and tensors.

    Preprocessing comes from the model: the input size, mean/std and class names recorded in
    its checkpoint card (``model.cfg`` of a registered pyg-fer model), fed to the same
    evaluation transform the engine evaluates with, so it cannot drift from training.

    Args:
        model: a pyg-fer model (e.g. from :func:`pyg_fer.engine.load_model`; put in eval
            mode), or an :class:`OnnxModel` (see :meth:`from_onnx`).
        detector: ``'haar'`` (default), ``'yunet'``, ``'none'`` (inputs are face crops) or an
            object with ``detect(rgb_uint8_hwc) -> list[Detection]``.
        detector_model: the YuNet ONNX file (``'yunet'``), or another Haar cascade XML.
        detector_options: the detector's thresholds, e.g. ``{"min_neighbors": 5,
            "min_face_size": 32}`` (Haar) or ``{"score_threshold": 0.8}`` (YuNet).
        device: where to run the model (``'auto'``, ``'cpu'``, ``'cuda'``; default: where
            ``model`` already is).
        batch_size: faces per forward pass, gathered across images and frames (default 32).
        margin: crop margin per side, as a fraction of the face box's longer side (default
            0.15: the square crop's side is 1.3× the box).
        img_size, mean, std, class_names: only for a model that carries no pyg-fer ``cfg``;
            for a pyg-fer model they must agree with its card (or be left out).
    """

    def __init__(
        self,
        model: Any,
        *,
        detector: str | FaceDetector = "haar",
        detector_model: str | Path | None = None,
        detector_options: dict[str, Any] | None = None,
        device: Any = None,
        batch_size: int = 32,
        margin: float = 0.15,
        img_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= margin <= 2:
            raise ValueError(f"margin must lie in [0, 2], got {margin}")
        spec = self._spec(model, img_size, mean, std, class_names)
        self.img_size, self.mean, self.std, self.class_names = spec
        self.transform = FaceTransform(self.img_size, self.mean, self.std)
        if isinstance(model, OnnxModel):
            if device is not None:
                raise ValueError("device= is for torch models; an ONNX model runs where its "
                                 "onnxruntime providers= say")
            self.model, self.device, self.dtype = model, None, None
        else:
            import torch

            from pyg_fer.engine.checkpoint import input_dtype
            from pyg_fer.engine.trainer import resolve_device

            if device is not None:
                model = model.to(resolve_device(str(device)))
            self.model = model.eval()
            self.device = next(model.parameters(), torch.empty(0)).device
            self.dtype = input_dtype(model)  # images go in at the model's precision
        self.detector = build_detector(detector, detector_model, **(detector_options or {}))
        self.batch_size = int(batch_size)
        self.margin = float(margin)

    @staticmethod
    def _spec(model: Any, img_size, mean, std, class_names):
        try:
            if isinstance(model, OnnxModel):
                spec = model
            else:
                from pyg_fer.engine.checkpoint import input_spec

                spec = input_spec(model)
        except ValueError as err:
            if img_size is None or mean is None or std is None or class_names is None:
                raise ValueError(
                    f"{type(model).__name__}: {err}; for a model without a pyg-fer cfg pass "
                    "img_size=, mean=, std= and class_names= explicitly") from None
            return (int(img_size), [float(v) for v in mean], [float(v) for v in std],
                    [str(c) for c in class_names])
        _, h, w = spec.input_size
        if h != w:
            raise ValueError(f"{type(model).__name__} takes {h}×{w} inputs; the predictor crops "
                             "square faces and supports square inputs only")
        have = {"img_size": h, "mean": spec.mean, "std": spec.std,
                "class_names": spec.class_names}
        given = {"img_size": img_size, "mean": mean, "std": std, "class_names": class_names}
        for key, value in given.items():
            if value is None:
                continue
            if key == "img_size":
                same = int(value) == h
            elif key == "class_names":
                same = [str(v) for v in value] == list(spec.class_names)
            else:
                same = np.allclose(value, have[key])
            if not same:
                raise ValueError(f"{key}={value!r} differs from the model's own {have[key]!r} "
                                 f"({type(model).__name__}); leave it out to use the model's")
        return h, list(spec.mean), list(spec.std), list(spec.class_names)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: Any = "auto",
                        detector: str | FaceDetector = "haar", **kwargs: Any) -> Predictor:
        """A predictor for a checkpoint (``.json`` card, ``.safetensors``, stem or run folder).

        ``kwargs`` go to :class:`Predictor` (``detector_model``, ``detector_options``,
        ``batch_size``, ``margin``). Raises ``FileNotFoundError`` / ``ValueError`` naming the
        file for a missing, truncated or foreign checkpoint.
        """
        from pyg_fer.engine.checkpoint import load_model
        from pyg_fer.engine.trainer import resolve_device

        model = load_model(path, device=resolve_device(str(device)))
        return cls(model, detector=detector, **kwargs)

    @classmethod
    def from_onnx(cls, path: str | Path, *, detector: str | FaceDetector = "haar",
                  providers: list[str] | None = None, threads: int | None = None,
                  **kwargs: Any) -> Predictor:
        """A predictor whose forward pass is onnxruntime running an exported file.

        The class names, input size and mean/std come from the file's metadata (written by
        :func:`pyg_fer.export.to_onnx`). ``providers``/``threads`` configure onnxruntime;
        ``kwargs`` go to :class:`Predictor`. Needs onnxruntime (``pip install
        'pyg-fer[export]'``), but not torch: this path imports NumPy, Pillow, onnxruntime
        (and OpenCV for face detection) only.
        """
        return cls(OnnxModel(path, providers=providers, threads=threads), detector=detector,
                   **kwargs)

    # ------------------------------------------------------------------------------------ API

    def predict(self, inputs: Any, *, boxes: Any = None, channel_order: str | None = None,
                stride: int = 1, annotate: str | Path | None = None) -> list[FaceRecord]:
        """One :class:`FaceRecord` per face found (and one per image without a face or that
        could not be read), in input order, faces in reading order.

        Args:
            inputs: a path (image, video or folder), a PIL image, a NumPy array, a tensor, or a
                list of these (see :data:`IMAGE_EXTENSIONS` and :data:`VIDEO_EXTENSIONS`).
            boxes: faces given instead of detected: one list of ``(x, y, w, h)`` per input
                (``None`` entries are detected), or one list for a single image.
            channel_order: ``'rgb'`` or ``'bgr'`` (OpenCV) for colour NumPy arrays; required
                for them. Tensors are taken as RGB unless told otherwise.
            stride: predict every ``stride``-th video frame (default 1: all).
            annotate: a folder for copies of the inputs with boxes, top label and probability
                drawn (videos become annotated videos with every frame; frames between strides
                show the last prediction).
        """
        return list(self.predict_iter(inputs, boxes=boxes, channel_order=channel_order,
                                      stride=stride, annotate=annotate))

    def predict_iter(self, inputs: Any, *, boxes: Any = None, channel_order: str | None = None,
                     stride: int = 1, annotate: str | Path | None = None
                     ) -> Iterator[FaceRecord]:
        """Like :meth:`predict`, but yields records as batches finish (memory stays bounded
        for long videos and large folders)."""
        items = expand_inputs(inputs, boxes, channel_order)
        return self.run(items, stride=stride, annotate=annotate)

    def expand(self, inputs: Any, *, boxes: Any = None,
               channel_order: str | None = None) -> list[_Input]:
        """The files and in-memory images ``inputs`` stands for (for :meth:`run`)."""
        return expand_inputs(inputs, boxes, channel_order)

    @staticmethod
    def count(items: Sequence[_Input], stride: int = 1) -> int:
        """How many images and video frames :meth:`run` will predict on (for progress bars;
        a video's count is what its container reports)."""
        return sum(count_frames(item, stride) for item in items)

    def run(self, items: Sequence[_Input], *, stride: int = 1,
            annotate: str | Path | None = None) -> Iterator[FaceRecord]:
        """Records for already expanded ``items`` (see :meth:`expand`)."""
        if int(stride) != stride or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride}")
        sink = AnnotationSink(annotate) if annotate is not None else None
        return self._run(items, int(stride), sink)

    # ------------------------------------------------------------------------------ internals

    def _run(self, items: Sequence[_Input], stride: int,
             sink: AnnotationSink | None) -> Iterator[FaceRecord]:
        pending: list[_Entry] = []
        n_faces = 0
        shown: dict[str, list[FaceRecord]] = {}  # last records per video, for frames between
        try:
            for frame in iter_frames(items, stride, keep_all_video_frames=sink is not None):
                entry = self._prepare(frame, keep_image=sink is not None)
                pending.append(entry)
                n_faces += len(entry.crops)
                video_end = frame.frame is not None and frame.last_of_source
                if n_faces >= self.batch_size or len(pending) >= self.batch_size or video_end:
                    yield from self._flush(pending, sink, shown)
                    pending, n_faces = [], 0
                if video_end and sink is not None:
                    sink.close_video()
                    shown.pop(frame.source, None)
            yield from self._flush(pending, sink, shown)
        except BaseException:
            if sink is not None:
                sink.discard()
            raise

    def _prepare(self, frame: Frame, keep_image: bool) -> _Entry:
        entry = _Entry(frame)
        if frame.error is not None or not frame.predict:
            return entry
        try:
            faces = self.faces(frame.image, frame.boxes, source=frame.source)
        except FaceError as err:
            entry.error = str(err)
            return entry
        entry.detections = [det for det, _ in faces]
        entry.crops = [self.transform(crop) for _, crop in faces]
        if not keep_image:
            frame.image = None
        return entry

    def faces(self, image: Image.Image, boxes: Sequence[Sequence[float]] | None = None, *,
              source: str = "<image>") -> list[tuple[Detection, Image.Image]]:
        """The faces of one RGB image, in reading order, each with the crop the model sees
        (before :attr:`transform`): the square around the face with :attr:`margin`, or the
        whole image for ``detector="none"``.

        ``boxes`` ``(x, y, w, h)`` are taken instead of detecting. Raises :class:`FaceError`
        naming ``source`` when a box lies outside the image or the detector fails.
        """
        width, height = image.size
        if boxes is not None:
            inside = [b for b in boxes
                      if b[0] < width and b[1] < height and b[0] + b[2] > 0 and b[1] + b[3] > 0]
            if len(inside) != len(boxes):
                bad = next(b for b in boxes if b not in inside)
                raise FaceError(f"{source}: box {bad} lies outside the {width}×{height} image")
            dets = [Detection(tuple(b), None) for b in boxes]
        else:
            try:
                dets = reading_order(self.detector.detect(np.asarray(image)))
            except Exception as err:  # noqa: BLE001 -- one image failing must not end the run
                raise FaceError(f"{source}: face detection failed: "
                                f"{type(err).__name__}: {err}") from err
        whole = boxes is None and isinstance(self.detector, WholeImage)
        return [(det, image if whole else image.crop(square_crop_box(det.box, self.margin)))
                for det in dets]

    def classify(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Softmax probabilities ``[N, classes]`` (float32) of crops preprocessed by
        :attr:`transform`, ``batch_size`` at a time."""
        out = []
        for start in range(0, len(crops), self.batch_size):
            x = np.stack(list(crops[start:start + self.batch_size])).astype(np.float32)
            out.append(self._forward(x))
        if not out:
            return np.empty((0, len(self.class_names)), dtype=np.float32)
        probs = np.concatenate(out)
        if probs.shape[1] != len(self.class_names):
            raise ValueError(f"the model gives {probs.shape[1]} outputs for "
                             f"{len(self.class_names)} class names {self.class_names}")
        return probs

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if isinstance(self.model, OnnxModel):
            return _softmax(self.model(x))
        import torch

        with torch.inference_mode():
            logits = self.model(torch.from_numpy(x).to(self.device, self.dtype))
            return logits.float().softmax(dim=1).cpu().numpy()

    def _records(self, entry: _Entry, probs: np.ndarray) -> list[FaceRecord]:
        f = entry.frame
        base = {"source": f.source, "frame": f.frame, "time": f.time}
        error = entry.error or f.error
        if error is not None:
            return [FaceRecord(**base, error=error)]
        if not entry.detections:
            return [FaceRecord(**base)]
        out = []
        for i, (det, row) in enumerate(zip(entry.detections, probs.tolist(), strict=True)):
            p = {c: float(v) for c, v in zip(self.class_names, row, strict=True)}
            out.append(FaceRecord(**base, face=i, box=tuple(int(v) for v in det.box),
                                  detector_score=det.score, probs=p,
                                  label=max(p, key=p.get), landmarks=det.landmarks))
        return out

    def _flush(self, pending: list[_Entry], sink: AnnotationSink | None,
               shown: dict[str, list[FaceRecord]]) -> Iterator[FaceRecord]:
        probs = self.classify([c for e in pending for c in e.crops])
        k = 0
        for entry in pending:
            n = len(entry.crops)
            f = entry.frame
            records = self._records(entry, probs[k:k + n]) if f.predict else []
            k += n
            if sink is not None and f.image is not None:
                faces = [r for r in records if r.box is not None]
                if f.frame is None:
                    sink.image(f.source, f.image, faces)
                else:
                    if f.predict:
                        shown[f.source] = faces
                    sink.video_frame(f.source, f.fps or 25.0, f.image, shown.get(f.source, []))
            entry.crops, f.image = [], None
            yield from records


class RunSummary:
    """Counts for the one-line summary of a run, fed record by record (constant memory)."""

    def __init__(self) -> None:
        self.images = self.frames = self.faces = self.no_face = self.errors = 0
        self._last: tuple[str, int | None] | None = None

    def add(self, record: FaceRecord) -> None:
        key = (record.source, record.frame)
        if key != self._last:  # the records of one image or frame come together
            self._last = key
            if record.frame is not None:
                self.frames += 1
            elif not is_video_path(record.source):  # an unreadable video is no image
                self.images += 1
        self.faces += record.status == "face"
        self.no_face += record.status == "no_face"
        self.errors += record.status == "error"

    def line(self, seconds: float) -> str:
        """``N faces in I images and F video frames (n without a face, e unreadable) in S s``."""
        def n(count: int, word: str) -> str:
            return f"{count} {word}{'s' * (count != 1)}"

        rate = f", {self.faces / seconds:.1f} faces/s" if seconds > 0 and self.faces else ""
        return (f"{n(self.faces, 'face')} in {n(self.images, 'image')} and "
                f"{n(self.frames, 'video frame')} ({self.no_face} without a face, {self.errors} "
                f"unreadable) in {seconds:.1f} s{rate}")


def summary_line(records: Sequence[FaceRecord], seconds: float) -> str:
    """The :class:`RunSummary` line of ``records``."""
    summary = RunSummary()
    for r in records:
        summary.add(r)
    return summary.line(seconds)
