import os
import socket
import subprocess
import sys

import pytest
from _engine_tiny import held_by_another_process

import pyg_fer.engine._runlock as runlock
from pyg_fer.engine._runlock import RUN_LOCK, claim, lock_holder, refuse_if_held

ME = f"{socket.gethostname()}:{os.getpid()}"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claim_holds_the_folder_until_release(tmp_path):
    assert lock_holder(tmp_path) is None
    lock = claim(tmp_path)
    assert (tmp_path / RUN_LOCK).read_text() == f"{ME}\n{tmp_path.resolve()}\n"
    # another open file description of the same file is another claimant (as another process)
    assert lock_holder(tmp_path) == ME
    with pytest.raises(ValueError, match=rf"'{tmp_path}' is in use by another training "
                                         rf"process \({ME}\); wait for it"):
        claim(tmp_path)
    lock.release()
    assert not (tmp_path / RUN_LOCK).exists() and lock_holder(tmp_path) is None
    claim(tmp_path).release()


def test_the_flock_decides_not_the_lock_files_content(tmp_path):
    path = tmp_path / RUN_LOCK
    # a leftover that names a live process (this one: a reused pid, an older pyg-fer) or a
    # folder it was copied from: no process holds the flock, so it is free
    for text in (f"{ME}\n{tmp_path.resolve()}\n", f"{ME}\n{tmp_path / 'original'}\n", ""):
        path.write_text(text)
        assert lock_holder(tmp_path) is None
        claim(tmp_path).release()
    # a lock whose content names a process that has ended, held by a live one that is taking
    # it over right now: held. Two runs that find the same killed run's lock cannot both
    # take it over (they used to both remove it and each create its own)
    stale = f"{socket.gethostname()}:{_dead_pid()}\n"
    with held_by_another_process(path, stale):
        assert lock_holder(tmp_path) == stale.strip()
        with pytest.raises(ValueError, match="in use by another training process"):
            claim(tmp_path)
    with held_by_another_process(path, ""):  # held, its stamp not yet written
        with pytest.raises(ValueError, match=r"process \(its lock file is empty\)"):
            refuse_if_held(tmp_path)
    claim(tmp_path).release()


def test_a_lock_removed_while_waiting_for_it_is_claimed_anew(tmp_path, monkeypatch):
    path = tmp_path / RUN_LOCK
    real = runlock._flock
    calls = []

    def flock_as_the_holder_releases(fd, exclusive):
        calls.append(exclusive)
        if len(calls) == 1:  # the holder removes its file as this process gets the old one
            path.unlink()
            path.write_text("")
        return real(fd, exclusive)

    monkeypatch.setattr(runlock, "_flock", flock_as_the_holder_releases)
    lock = claim(tmp_path)
    monkeypatch.setattr(runlock, "_flock", real)
    assert calls[:2] == [True, True]  # a second try, on the new file
    assert path.read_text().startswith(ME) and lock_holder(tmp_path) == ME
    lock.release()


def test_without_flock_the_content_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "_flock", lambda fd, exclusive: None)  # e.g. a Lustre mount
    path = tmp_path / RUN_LOCK
    # no lock file yet: the one this claim creates exclusively is the lock (it used to be
    # created empty first, then refused as another process's)
    lock = claim(tmp_path)
    assert path.read_text() == f"{ME}\n{tmp_path.resolve()}\n"
    with pytest.raises(ValueError, match=rf"process \({ME}\)"):
        claim(tmp_path)
    lock.release()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = f"{socket.gethostname()}:{other.pid}"
        path.write_text(f"{live}\n")
        with pytest.raises(ValueError, match=rf"in use by another training process \({live}\)"):
            claim(tmp_path)
        path.write_text(f"{live}\n{tmp_path.resolve()}\n")
        assert lock_holder(tmp_path) == live
        path.write_text(f"{live}\n{tmp_path / 'original'}\n")  # copied with the folder
        assert lock_holder(tmp_path) is None
        path.write_text("another-host:12\n")  # cannot be asked: held
        assert lock_holder(tmp_path) == "another-host:12"
        path.write_text("")  # being written, or emptied by hand
        with pytest.raises(ValueError, match=r"process \(its lock file is empty\)"):
            claim(tmp_path)
    finally:
        other.kill()
        other.wait()
    path.write_text(f"{socket.gethostname()}:{_dead_pid()}\n")  # a killed run's: replaced
    lock = claim(tmp_path)
    assert path.read_text() == f"{ME}\n{tmp_path.resolve()}\n"
    with pytest.raises(ValueError, match=rf"process \({ME}\)"):
        claim(tmp_path)  # held: the file was created exclusively
    lock.release()
    assert not path.exists()


def _as_another_user(monkeypatch, path):
    """``path`` belongs to another user, mode 0644: opening it to write is refused."""
    real_open = os.open

    def open_as_another_user(p, flags, *args):
        writes = flags & os.O_ACCMODE in (os.O_RDWR, os.O_WRONLY)
        if str(p) == str(path) and writes and path.exists() and not flags & os.O_EXCL:
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, flags, *args)

    monkeypatch.setattr(runlock.os, "open", open_as_another_user)


def test_a_free_lock_file_of_another_user_is_replaced(tmp_path, monkeypatch):
    path = tmp_path / RUN_LOCK
    path.write_text("someone:12\n")  # their killed run's, mode 0644: this user can only read it
    real_open = os.open
    _as_another_user(monkeypatch, path)
    lock = claim(tmp_path)  # used to be a PermissionError traceback
    monkeypatch.setattr(runlock.os, "open", real_open)
    assert path.read_text().startswith(ME) and lock_holder(tmp_path) == ME
    lock.release()


def test_a_lock_file_that_cannot_be_read_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / RUN_LOCK
    path.write_text("someone:12\n")
    real_open = os.open

    def unreadable(p, flags, *args):
        if str(p) == str(path) and not flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, flags, *args)

    monkeypatch.setattr(runlock.os, "open", unreadable)
    for call in (claim, refuse_if_held):
        with pytest.raises(ValueError, match=rf"'{tmp_path}': its lock file '{path}' cannot be "
                                             r"used \(Permission denied\)"):
            call(tmp_path)


def test_a_forked_child_does_not_keep_the_lock(tmp_path):
    # a DataLoader worker forked by a run that is then killed (kill -9) used to hold the
    # folder, in the dead run's name, until the orphaned worker noticed and exited
    lock = claim(tmp_path)
    read_end, write_end = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child (past the fork hooks): stay alive until the parent has looked
        os.close(write_end)
        os.write(ready_w, b"r")
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"r"
        os.close(ready_r)
        os.close(lock._fd)  # the run's own descriptor gone, as when its process is killed
        runlock._HELD.discard(lock._fd)
        lock._fd = None
        assert lock_holder(tmp_path) is None
    finally:
        os.close(write_end)
        os.waitpid(pid, 0)
    lock.release()


def test_another_users_lock_in_a_folder_that_keeps_their_files(tmp_path, monkeypatch):
    path = tmp_path / RUN_LOCK
    path.write_text("someone:12\n")
    real_unlink = type(path).unlink
    _as_another_user(monkeypatch, path)

    def sticky_unlink(self, missing_ok=False):  # /tmp-like: only the owner removes a file
        if str(self) == str(path):
            raise PermissionError(1, "Operation not permitted", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(type(path), "unlink", sticky_unlink)
    with pytest.raises(ValueError, match=r"cannot be used \(Operation not permitted\); if no "
                                         r"run is writing there, its owner can delete it"):
        claim(tmp_path)
