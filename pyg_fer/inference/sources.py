"""What ``Predictor.predict`` accepts, turned into a stream of RGB frames.

Inputs: a path (image, video or folder), a PIL image, a NumPy array (``H×W`` gray, ``H×W×3``
or ``H×W×4`` with an explicit ``channel_order``, or a stack ``N×H×W×C``), a tensor (``C×H×W``
or ``N×C×H×W``, RGB, float in [0, 1] or uint8), or a list of these. Files are decoded one at a
time and videos frame by frame, so memory does not grow with the input.

A file that is missing or cannot be decoded becomes a :class:`Frame` with an ``error`` naming
it (the run goes on); an in-memory array of the wrong shape or type raises ``ValueError`` at
once, before any work, since it is a programming error rather than a bad file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pyg_fer._images import IMG_EXTENSIONS, load_rgb, to_rgb
from pyg_fer.inference.detectors import import_cv2

#: File suffixes read as images (lower case; matched case-insensitively).
IMAGE_EXTENSIONS = tuple(sorted(set(IMG_EXTENSIONS) | {".gif"}))
#: File suffixes read as videos, frame by frame, through OpenCV.
VIDEO_EXTENSIONS = (".avi", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv")
CHANNEL_ORDERS = ("rgb", "bgr")

Box = tuple[int, int, int, int]


@dataclass
class Frame:
    """One still image or one video frame on its way to the model.

    ``image`` is RGB (``None`` when ``error`` says why it could not be read); ``frame`` and
    ``time`` (seconds) are set for video frames; ``boxes`` are user-given faces (``None``: run
    the detector); ``predict`` is ``False`` for video frames read only to be annotated.
    """

    source: str
    image: Image.Image | None
    frame: int | None = None
    time: float | None = None
    error: str | None = None
    boxes: list[Box] | None = None
    predict: bool = True
    last_of_source: bool = True
    fps: float | None = None


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video, by its suffix (:data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class _Input:
    """One entry of the expanded input list: a file, or one in-memory image."""

    source: str
    path: Path | None = None
    image: Image.Image | None = None
    boxes: list[Box] | None = None
    error: str | None = None

    @property
    def is_video(self) -> bool:
        return self.path is not None and is_video_path(self.path)


def _as_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return np.rint(arr / 257.0).astype(np.uint8)
    if arr.dtype.kind == "f":
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"{where}: a float array must hold values in [0, 1], got the range "
                             f"[{arr.min()}, {arr.max()}]")
        return np.rint(arr * 255.0).astype(np.uint8)
    raise ValueError(f"{where}: unsupported dtype {arr.dtype} (use uint8, uint16 or float in "
                     "[0, 1])")


def _array_to_pil(arr: np.ndarray, channel_order: str | None, where: str) -> Image.Image:
    """``H×W`` / ``H×W×1`` / ``H×W×3`` / ``H×W×4`` array → RGB PIL image."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        hint = ""
        stack = "a stack of N gray images? give arr[..., None] (N×H×W×1) or a list of arrays"
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
            hint = (" (channels first? NumPy images are H×W×C: use arr.transpose(1, 2, 0); "
                    f"or {stack})")
        elif arr.ndim == 3:
            hint = f" ({stack})"
        raise ValueError(f"{where}: expected an image array of shape H×W, H×W×3 or H×W×4, got "
                         f"{tuple(arr.shape)}{hint}")
    if min(arr.shape[:2]) < 1:
        raise ValueError(f"{where}: empty image of shape {tuple(arr.shape)}")
    arr = _as_uint8(arr, where)
    if arr.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(arr), mode="L").convert("RGB")
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"{where}: a colour array needs channel_order='rgb' or 'bgr' (OpenCV "
                         f"images are BGR), got {channel_order!r}")
    if channel_order == "bgr":
        arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]
    mode = "RGB" if arr.shape[2] == 3 else "RGBA"
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode).convert("RGB")


def _is_tensor(item: Any) -> bool:
    # torch is imported only if the caller already has it: a tensor cannot exist without it,
    # and an ONNX deployment runs without torch installed.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(item, torch.Tensor)


def _tensor_images(t: Any, channel_order: str | None, where: str) -> list[Image.Image]:
    shape = tuple(t.shape)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        hint = (" (channels last? tensors are C×H×W: use t.permute(2, 0, 1))"
                if len(shape) == 3 and shape[-1] in (1, 3) else "")
        raise ValueError(f"{where}: expected a tensor of shape C×H×W or N×C×H×W with C in "
                         f"(1, 3), got {shape}{hint}")
    t = t.detach().to("cpu")
    if t.is_floating_point():
        t = t.float()  # NumPy has no bfloat16; [0, 1] intensities need no more than float32
    arr = t.permute(0, 2, 3, 1).numpy()
    order = channel_order or "rgb"
    return [_array_to_pil(a, order, f"{where}[{i}]" if len(arr) > 1 else where)
            for i, a in enumerate(arr)]


def _check_boxes(boxes: Any, where: str) -> list[Box] | None:
    if boxes is None:
        return None
    out = []
    for j, b in enumerate(boxes):
        try:
            x, y, w, h = (float(v) for v in b)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: box {j} is {b!r}, not four numbers (x, y, w, h)") \
                from None
        if not all(np.isfinite((x, y, w, h))) or w <= 0 or h <= 0:
            raise ValueError(f"{where}: box {j} {tuple(b)} needs finite values and w, h > 0")
        out.append((round(x), round(y), max(1, round(w)), max(1, round(h))))
    return out


def _is_box(b: Any) -> bool:
    if isinstance(b, np.ndarray):
        return b.shape == (4,)
    return (isinstance(b, Sequence) and len(b) == 4
            and all(isinstance(v, (int, float, np.number)) for v in b))


def _one_image_boxes(boxes: Any) -> list[Any] | None:
    """``boxes`` as one image's box list — ``[(x, y, w, h), ...]``, an ``N×4`` array (what
    OpenCV's detectors return), or empty (no faces) — else ``None`` (one list per input)."""
    if isinstance(boxes, np.ndarray):
        if boxes.ndim == 2 and boxes.shape[1] == 4 or boxes.size == 0:
            return list(boxes.reshape(-1, 4))
        return None
    if isinstance(boxes, Sequence) and not isinstance(boxes, str) and \
            all(_is_box(b) for b in boxes):
        return list(boxes)
    return None


def _folder_files(folder: Path) -> list[Path]:
    exts = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    # a broken link is listed, so that it is reported as unreadable rather than dropped
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in exts
                  and (p.is_file() or p.is_symlink() and not p.exists()))


def expand_inputs(inputs: Any, boxes: Any = None,
                  channel_order: str | None = None) -> list[_Input]:
    """The flat list of files and in-memory images that ``inputs`` stands for.

    Folders expand to their image and video files (recursively, sorted; other files are not
    inputs). ``boxes``: one list of ``(x, y, w, h)`` per input (``None`` entries run the
    detector), or one list of boxes when ``inputs`` is a single image.
    """
    if channel_order is not None:
        channel_order = str(channel_order).lower()
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    single = not isinstance(inputs, (list, tuple))
    items = [inputs] if single else list(inputs)
    if boxes is not None:
        one = _one_image_boxes(boxes) if single else None
        if one is not None:
            boxes = [one]
        if not isinstance(boxes, Sequence) or len(boxes) != len(items):
            raise ValueError(f"boxes must hold one list of (x, y, w, h) per input: "
                             f"{len(items)} inputs, got {boxes!r:.80}")
    out: list[_Input] = []
    for i, item in enumerate(items):
        where = f"<input {i}>"
        item_boxes = None if boxes is None else boxes[i]
        if isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if path.is_dir():
                if item_boxes is not None:
                    raise ValueError(f"boxes were given for the folder '{path}'; give boxes per "
                                     "image file")
                files = _folder_files(path)
                out += [_Input(str(p), path=p) for p in files]
                if not files:
                    exts = ", ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
                    out.append(_Input(str(path), error=f"folder '{path}' holds no image or "
                                                       f"video file ({exts})"))
                continue
            if item_boxes is not None and is_video_path(path):
                raise ValueError(f"boxes were given for the video '{path}'; boxes are per image")
            out.append(_Input(str(path), path=path, boxes=_check_boxes(item_boxes, str(path))))
            continue
        if isinstance(item, Image.Image):
            images = [to_rgb(item)]
        elif isinstance(item, np.ndarray):
            if item.ndim == 4:
                images = [_array_to_pil(a, channel_order, f"{where}[{j}]")
                          for j, a in enumerate(item)]
            else:
                images = [_array_to_pil(item, channel_order, where)]
        elif _is_tensor(item):
            images = _tensor_images(item, channel_order, where)
        else:
            raise ValueError(f"{where}: cannot predict on a {type(item).__name__}; give a path, "
                             "a PIL image, a NumPy array or a tensor")
        if item_boxes is not None and len(images) != 1:
            raise ValueError(f"{where}: boxes were given for a stack of {len(images)} images; "
                             "pass the images as a list")
        for j, im in enumerate(images):
            name = where if len(images) == 1 else f"<input {i}, image {j}>"
            out.append(_Input(name, image=im, boxes=_check_boxes(item_boxes, name)))
    return out


def count_frames(item: _Input, stride: int) -> int:
    """How many frames ``item`` yields for prediction (a video's frame count as the container
    reports it, divided by ``stride``; 1 for an image)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if not item.is_video or item.error is not None or not item.path.is_file():
        return 1
    cv2 = import_cv2("reading videos")
    cap = cv2.VideoCapture(str(item.path))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    return max(1, -(-n // stride)) if n > 0 else 1


def read_image(path: Path) -> Image.Image:
    """An RGB image from a file, EXIF orientation applied; ValueError names the file."""
    if is_video_path(path):
        raise ValueError(f"'{path}' is a video")
    try:
        return load_rgb(str(path), exif_transpose=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"'{path}' does not exist") from None
    except ValueError as err:
        raise ValueError(f"'{path}' is not an image that can be decoded: {err.__cause__ or err}") \
            from None


class VideoCutShort(ValueError):
    """A video whose frames stop decoding before the count its container declares; ``frame``
    is the first frame that could not be read."""

    def __init__(self, message: str, frame: int) -> None:
        super().__init__(message)
        self.frame = frame


def video_frames(path: Path, stride: int,
                 keep_all: bool) -> Iterator[tuple[int, float | None, np.ndarray, bool, float]]:
    """``(index, seconds, rgb array, predict, fps)`` for every ``stride``-th frame of a video, and
    for the frames between them too when ``keep_all`` (with ``predict=False``). Frames are
    decoded one at a time; skipped frames are grabbed without decoding.

    Raises:
        ValueError: the file is not a video OpenCV can open, or no frame decodes.
        VideoCutShort: decoding stops more than 1 % (and 1 frame) before the container's frame
            count (a truncated or damaged file; the count of some containers is an estimate,
            hence the margin), after the frames before it were yielded.
    """
    cv2 = import_cv2("reading videos")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"'{path}' is not a video OpenCV can open")
        fps = cap.get(cv2.CAP_PROP_FPS)
        index = 0
        while True:
            on_stride = index % stride == 0
            if on_stride or keep_all:
                ok, bgr = cap.read()
                if not ok:
                    break
                seconds = index / fps if fps and fps > 0 else (
                    cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 or None)
                yield (index, seconds, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), on_stride,
                       fps if fps and fps > 0 else 25.0)
            elif not cap.grab():
                break
            index += 1
        if index == 0:
            raise ValueError(f"'{path}': no frame could be decoded")
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if index < declared - max(1, declared // 100):
            raise VideoCutShort(f"'{path}': decoding stopped at frame {index} of the {declared} "
                                f"the file declares (truncated or damaged)", index)
    finally:
        cap.release()


def iter_frames(items: Sequence[_Input], stride: int = 1,
                keep_all_video_frames: bool = False) -> Iterator[Frame]:
    """Decode ``items`` one by one into :class:`Frame` objects (errors become frames too)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    for item in items:
        if item.error is not None:
            yield Frame(item.source, None, error=item.error)
        elif item.image is not None:
            yield Frame(item.source, item.image, boxes=item.boxes)
        elif not item.path.exists():
            yield Frame(item.source, None, error=f"'{item.path}' does not exist")
        elif item.is_video:
            last: Frame | None = None
            try:
                for index, seconds, rgb, on_stride, fps in video_frames(
                        item.path, stride, keep_all_video_frames):
                    if last is not None:
                        yield last
                    last = Frame(item.source, Image.fromarray(rgb), frame=index, time=seconds,
                                 predict=on_stride, last_of_source=False, fps=fps)
            except (ValueError, ImportError) as err:
                if last is not None:
                    last.last_of_source = True
                    yield last
                    last = None
                yield Frame(item.source, None, frame=getattr(err, "frame", None), error=str(err))
            if last is not None:
                last.last_of_source = True
                yield last
        else:
            try:
                yield Frame(item.source, read_image(item.path), boxes=item.boxes)
            except (ValueError, FileNotFoundError) as err:
                yield Frame(item.source, None, error=str(err))
