"""Annotated copies of the inputs: boxes with the top label and its probability."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pyg_fer._files import atomic_path, temp_path_beside
from pyg_fer.inference.detectors import import_cv2
from pyg_fer.inference.records import FaceRecord

_BOX = (0, 230, 64)
_TEXT_BG = (0, 0, 0)


def draw_records(image: Image.Image, records: Sequence[FaceRecord]) -> Image.Image:
    """A copy of ``image`` with each record's box and ``label p`` drawn on it."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    width = max(1, round(min(out.size) / 200))
    for r in records:
        if r.box is None:
            continue
        x, y, w, h = r.box
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=_BOX, width=width)
        if r.label is not None and r.probs:
            text = f"{r.label} {r.probs[r.label]:.2f}"
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            ty = y - (bottom - top) - 4 if y - (bottom - top) - 4 >= 0 else y + h + 1
            draw.rectangle((x, ty, x + right - left + 4, ty + bottom - top + 4), fill=_TEXT_BG)
            draw.text((x + 2 - left, ty + 2 - top), text, fill=_BOX, font=font)
    return out


class AnnotationSink:
    """Where annotated images and videos go: ``<dir>/<input stem>.<ext>`` (a numeric suffix
    is added when two inputs share a stem). Every file is written atomically."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._used: set[str] = set()
        self._video: _VideoWriter | None = None
        self._video_source: str | None = None

    def _name(self, source: str, suffix: str) -> Path:
        stem = Path(source).stem if not source.startswith("<") else \
            "input_" + "_".join("".join(c if c.isdigit() else " " for c in source).split())
        name, k = stem + suffix, 1
        while name in self._used:
            name, k = f"{stem}_{k}{suffix}", k + 1
        self._used.add(name)
        return self.folder / name

    def image(self, source: str, image: Image.Image, records: Sequence[FaceRecord]) -> Path:
        path = self._name(source, ".png" if source.startswith("<")
                          or Path(source).suffix.lower() == ".png" else ".jpg")
        with atomic_path(path, suffix=path.suffix) as tmp:
            drawn = draw_records(image, records)
            drawn.save(tmp, **({"quality": 92} if path.suffix == ".jpg" else {}))
        return path

    def video_frame(self, source: str, fps: float, image: Image.Image,
                    records: Sequence[FaceRecord]) -> None:
        if self._video_source != source:
            self.close_video()
            suffix = ".avi" if Path(source).suffix.lower() == ".avi" else ".mp4"
            self._video = _VideoWriter(self._name(source, suffix), fps, image.size)
            self._video_source = source
        self._video.write(draw_records(image, records))

    def close_video(self) -> Path | None:
        path = None
        if self._video is not None:
            path = self._video.close()
        self._video, self._video_source = None, None
        return path

    def discard(self) -> None:
        if self._video is not None:
            self._video.discard()
        self._video, self._video_source = None, None


class _VideoWriter:
    """``cv2.VideoWriter`` into a temporary file, moved into place on :meth:`close`."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        cv2 = import_cv2("writing annotated videos")
        self.path, self.size, self._cv2 = path, size, cv2
        self._tmp = str(temp_path_beside(path, suffix=path.suffix))
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
        self._writer = cv2.VideoWriter(self._tmp, fourcc, float(fps), size)
        if not self._writer.isOpened():
            os.unlink(self._tmp)
            raise ValueError(f"OpenCV cannot write the video '{path}'")

    def write(self, image: Image.Image) -> None:
        if image.size != self.size:
            raise ValueError(f"video frame of size {image.size} in a video of size {self.size}")
        self._writer.write(self._cv2.cvtColor(np.asarray(image), self._cv2.COLOR_RGB2BGR))

    def close(self) -> Path:
        self._writer.release()
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        self._writer.release()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)
