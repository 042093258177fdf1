"""The lock by which one training process holds its run folder.

The lock file ``.pyg-fer.lock`` holds ``host:pid`` and the folder's path, for messages. Who
holds it is decided by an advisory ``flock`` on that file, which the operating system drops
when the process ends however it ends, so a killed run leaves no lock that counts, a folder
copied with its lock file is free, and two processes that find the same leftover lock cannot
both take it over (taking it over *is* acquiring the ``flock``). On a file system without
``flock`` (some network and FUSE mounts) the file's content decides, as a fallback: a lock of
this host whose process has ended is replaced; one of another host counts as held.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: the content of the lock file decides
    fcntl = None  # type: ignore[assignment]

#: The file by which a training process holds its run folder: its ``host:pid``, then the folder.
RUN_LOCK = ".pyg-fer.lock"


def _flock(fd: int, exclusive: bool) -> bool | None:
    """Try to ``flock`` ``fd`` without waiting: ``True`` (locked), ``False`` (another process
    holds it) or ``None`` (no ``flock`` on this platform or file system)."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP, ENOSYS...: this mount has no flock
        return None
    return True


def _holder_by_content(text: str, run_dir: Path) -> str | None:
    """The fallback without ``flock``: ``'host:pid'`` of the lock's live process, or ``None``
    (a process of this host that has ended, or a lock copied with the folder from another)."""
    holder, _, folder = text.partition("\n")
    if folder.strip() and folder.strip() != str(run_dir.resolve()):
        return None  # the lock of the folder this one was copied from
    host, _, pid = holder.strip().rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return None  # a killed run's lock
        except PermissionError:
            pass  # alive, another user's
    return holder.strip()  # alive here, or on another host (which cannot be asked)


def lock_holder(run_dir: Path) -> str | None:
    """``'host:pid'`` of the process holding ``run_dir`` (``''`` while it writes its lock
    file), or ``None`` when no process does."""
    try:
        fd = os.open(run_dir / RUN_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except PermissionError as err:
        raise _unusable(run_dir, err) from None
    try:
        text = os.read(fd, 1 << 16).decode("utf-8", "replace")
        held = _flock(fd, exclusive=False)
    finally:
        os.close(fd)  # drops the shared lock this check may have taken
    if held is None:
        return _holder_by_content(text, run_dir)
    return None if held else text.partition("\n")[0].strip()


def refuse_if_held(run_dir: Path) -> None:
    """Raise if another training process holds ``run_dir``."""
    holder = lock_holder(run_dir)
    if holder is not None:
        raise ValueError(f"run folder '{run_dir}' is in use by another training process "
                         f"({holder or 'its lock file is empty'}); wait for it, or pick "
                         f"another output.name (if no run is writing there, delete "
                         f"'{run_dir / RUN_LOCK}')")


#: Descriptors of the locks this process holds: a forked child (a DataLoader worker) closes
#: its copies, so that the lock ends with this process, not with its last orphaned worker.
_HELD: set[int] = set()


def _close_inherited() -> None:
    for fd in _HELD:
        os.close(fd)  # the parent's descriptor keeps the flock
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


class RunLock:
    """``run_dir`` held by this process until :meth:`release`; see :func:`claim`."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path, self._fd = path, fd
        if fd is not None:
            _HELD.add(fd)

    def release(self) -> None:
        """Remove the lock file, then drop the ``flock`` (a process waiting on the removed
        file finds it gone and starts again on a new one)."""
        self.path.unlink(missing_ok=True)
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.close(self._fd)
            self._fd = None


def _open(path: Path) -> tuple[int, bool, bool] | None:
    """``(fd, created, writable)`` of the lock file, created if missing; ``None`` if it
    vanished between two looks. A lock file of another user opens read-only (``flock`` works
    on it all the same)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True, True
    except FileExistsError:
        pass
    try:
        return os.open(path, os.O_RDWR), False, True
    except PermissionError:
        pass
    except FileNotFoundError:
        return None
    try:
        return os.open(path, os.O_RDONLY), False, False
    except PermissionError as err:
        raise _unusable(path.parent, err) from None
    except FileNotFoundError:
        return None


def _unusable(run_dir: Path, err: OSError) -> ValueError:
    return ValueError(f"run folder '{run_dir}': its lock file '{run_dir / RUN_LOCK}' cannot be "
                      f"used ({err.strerror}); if no run is writing there, its owner can delete "
                      f"it")


def claim(run_dir: Path) -> RunLock:
    """Hold ``run_dir`` for this process, or raise (naming the holder) if another holds it."""
    path = run_dir / RUN_LOCK
    stamp = f"{socket.gethostname()}:{os.getpid()}\n{run_dir.resolve()}\n".encode()
    while True:
        opened = _open(path)
        if opened is None:
            continue
        fd, created, writable = opened
        got = _flock(fd, exclusive=True)
        if got is None:  # no flock here: the exclusively created file is the lock
            if not created:
                os.close(fd)
            return _claim_by_content(run_dir, stamp, fd if created else None)
        if not got:
            os.close(fd)
            refuse_if_held(run_dir)
            continue  # released between the two looks: try again
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # its holder removed it as this process waited: start on the new file
            os.close(fd)
            continue
        if not writable:  # a free lock file of another user: remove it, still holding its
            try:  # flock, and start on a new one
                path.unlink()
            except PermissionError as err:  # a folder that keeps others' files (sticky bit)
                raise _unusable(run_dir, err) from None
            finally:
                os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, stamp)
        return RunLock(path, fd)


def _claim_by_content(run_dir: Path, stamp: bytes, fd: int | None = None) -> RunLock:
    """The fallback without ``flock``: an exclusively created lock file (``fd``, when the
    caller created it); a lock whose process has ended is replaced."""
    path = run_dir / RUN_LOCK
    while fd is None:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            refuse_if_held(run_dir)
            path.unlink(missing_ok=True)  # stale: its process has ended
    os.write(fd, stamp)
    os.close(fd)
    return RunLock(path, None)
