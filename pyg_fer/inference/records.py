"""Per-face records and their plain outputs: list of dicts, CSV, JSON lines (atomic writes)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyg_fer._files import atomic_write_text, json_text, temp_path_beside

FORMATS = (".jsonl", ".csv")


@dataclass
class FaceRecord:
    """One face found in one image or video frame, or why there is none.

    Attributes:
        source: the file path, or ``<input i>`` for an in-memory image.
        frame: the video frame index (``None`` for a still image).
        time: the video timestamp in seconds (``None`` for a still image).
        face: the face's index in its image, in reading order (``None`` without a face).
        box: ``(x, y, w, h)`` in pixels of the (EXIF-rotated) image, as detected or given;
            ``None`` when no face was found or the input could not be read.
        detector_score: the detector's score (Haar: merged detections; YuNet: confidence in
            [0, 1]; ``None`` for user boxes and ``detector="none"``).
        probs: ``{class name: probability}`` in the checkpoint's class order, or ``None``.
        label: the most probable class, or ``None``.
        landmarks: five ``(x, y)`` points from YuNet, else ``None``.
        error: why the input could not be read (names the file), else ``None``.
    """

    source: str
    frame: int | None = None
    time: float | None = None
    face: int | None = None
    box: tuple[int, int, int, int] | None = None
    detector_score: float | None = None
    probs: dict[str, float] | None = None
    label: str | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        """``'face'``, ``'no_face'`` or ``'error'``."""
        if self.error is not None:
            return "error"
        return "no_face" if self.box is None else "face"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("box", "landmarks"):
            if d[key] is not None:
                d[key] = [list(v) if isinstance(v, tuple) else v for v in d[key]]
        return d


def to_dicts(records: Iterable[FaceRecord]) -> list[dict[str, Any]]:
    """Records as plain dicts (JSON-safe; no pandas needed)."""
    return [r.to_dict() for r in records]


def _csv_header(class_names: Sequence[str]) -> list[str]:
    return (["source", "frame", "time", "face", "x", "y", "w", "h", "detector_score", "label"]
            + [f"p_{c}" for c in class_names] + ["error"])


def _csv_row(r: FaceRecord, class_names: Sequence[str]) -> list[Any]:
    box = r.box or (None,) * 4
    probs = r.probs or {}
    row = [r.source, r.frame, r.time, r.face, *box, r.detector_score, r.label]
    row += [probs.get(c) for c in class_names] + [r.error]
    return ["" if v is None else v for v in row]


class RecordWriter:
    """Stream records to a ``.jsonl`` or ``.csv`` file, atomically.

    Lines go to a temporary file in the target's folder, moved over the target by
    :meth:`close` only; a run that fails half-way leaves any previous file untouched. Use as a
    context manager: an exception inside the block discards the temporary file.

    Args:
        path: output file; its suffix (``.jsonl`` or ``.csv``) picks the format.
        class_names: the CSV's probability columns (``p_<class>``), in order.
    """

    def __init__(self, path: str | Path, class_names: Sequence[str]) -> None:
        self.path = Path(path)
        self.format = self.path.suffix.lower()
        if self.format not in FORMATS:
            raise ValueError(f"output '{self.path}' must end in .jsonl or .csv")
        self.class_names = list(class_names)
        self._tmp = temp_path_beside(self.path)
        self._file = open(self._tmp, "w", encoding="utf-8", newline="")  # closed by close/discard
        self._csv = None
        if self.format == ".csv":
            self._csv = csv.writer(self._file)
            self._csv.writerow(_csv_header(self.class_names))

    def write(self, record: FaceRecord) -> None:
        if self._csv is not None:
            self._csv.writerow(_csv_row(record, self.class_names))
        else:
            self._file.write(json_text(record.to_dict()) + "\n")

    def close(self) -> None:
        """Flush, sync and move the file into place."""
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def class_names_of(records: Sequence[FaceRecord]) -> list[str]:
    """The class names in ``records``' probabilities, in first-seen order."""
    names: dict[str, None] = {}
    for r in records:
        for c in r.probs or {}:
            names.setdefault(c, None)
    return list(names)


def to_csv(records: Sequence[FaceRecord], class_names: Sequence[str] | None = None) -> str:
    """Records as CSV text: one row per record, ``x, y, w, h`` and a ``p_<class>`` column per
    class (default: the classes found in ``records``)."""
    names = class_names_of(records) if class_names is None else list(class_names)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(_csv_header(names))
    for r in records:
        writer.writerow(_csv_row(r, names))
    return buf.getvalue()


def to_jsonl(records: Iterable[FaceRecord]) -> str:
    """Records as JSON lines, one object per record."""
    return "".join(json_text(r.to_dict()) + "\n" for r in records)


def write_records(records: Sequence[FaceRecord], path: str | Path,
                  class_names: Sequence[str] | None = None) -> Path:
    """Write ``records`` to ``path`` (``.jsonl`` or ``.csv`` by suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        atomic_write_text(path, to_csv(records, class_names))
    elif suffix == ".jsonl":
        atomic_write_text(path, to_jsonl(records))
    else:
        raise ValueError(f"output '{path}' must end in .jsonl or .csv")
    return path
