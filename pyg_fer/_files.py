"""Atomic file writes, strict JSON text and file hashing, shared by every layer that writes or
checks files."""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PathLike = str | Path


def temp_path_beside(path: PathLike, suffix: str = ".tmp") -> Path:
    """A new empty temporary file in ``path``'s folder (created if needed), named after it, for
    writing ``path`` atomically: write the temporary file, then ``os.replace`` it onto ``path``
    (same file system, so the move is atomic).

    The file gets the permissions ``path`` has, or, for a new ``path``, those an ordinary
    ``open(path, 'w')`` would give (``0o666`` less the umask, applied by the system: the
    process's umask is never changed), not ``mkstemp``'s private ``0o600``: outputs stay
    readable by whoever could read them before.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # read first: another process may remove ``path`` at any time
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        break
    try:
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return tmp


@contextmanager
def atomic_path(path: PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that takes a file name (ONNX,
    ``torch.export``, Pillow, NumPy); on normal exit it replaces ``path``, on an error it is
    removed and ``path`` is left as it was."""
    tmp = temp_path_beside(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def json_text(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` that writes standard JSON: a NaN or infinite float (a diverged loss, the
    accuracy of no samples) becomes ``null``, not the ``NaN`` literal strict parsers reject."""
    return json.dumps(_finite_or_none(obj), allow_nan=False, **kwargs)


def sha256_file(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()
