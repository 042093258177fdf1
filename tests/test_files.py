"""pyg_fer._files: atomic writes keep the permissions an ordinary write would give; JSON text
is standard JSON."""

import json
import os
import stat

import pytest

from pyg_fer._files import atomic_path, atomic_write_text, json_text


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_file_gets_the_umask_mode_not_mkstemps_private_one(tmp_path, umask_022):
    atomic_write_text(tmp_path / "faces.csv", "a\n")
    assert _mode(tmp_path / "faces.csv") == 0o644
    os.umask(0o077)
    atomic_write_text(tmp_path / "private.csv", "a\n")
    assert _mode(tmp_path / "private.csv") == 0o600


def test_replacing_a_file_keeps_its_mode(tmp_path, umask_022):
    target = tmp_path / "model.onnx"
    target.write_text("old")
    os.chmod(target, 0o640)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and _mode(target) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "records.jsonl"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["records.jsonl"]


def test_json_text_writes_standard_json_with_null_for_non_finite_floats():
    text = json_text({"loss": float("nan"), "acc": [0.5, float("inf")], "n": 3, "s": "NaN"})
    assert text == '{"loss": null, "acc": [0.5, null], "n": 3, "s": "NaN"}'
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in strict JSON"))


def test_writing_never_changes_the_process_umask(tmp_path, monkeypatch):
    # reading the umask means setting it: another thread creating a file meanwhile would get
    # the temporary one; the system applies the umask to the new file instead
    def no_umask(mask):
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", no_umask)
    atomic_write_text(tmp_path / "new.txt", "a")
    atomic_write_text(tmp_path / "new.txt", "b")
    assert (tmp_path / "new.txt").read_text() == "b"


def test_a_target_removed_during_the_write_is_simply_created(tmp_path, monkeypatch):
    import pyg_fer._files as files

    target = tmp_path / "report.json"
    target.write_text("old")
    real_stat = os.stat

    def removed_meanwhile(path, *args, **kwargs):  # another process unlinks it just now
        if os.fspath(path) == os.fspath(target):
            os.unlink(target)
            raise FileNotFoundError(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(files.os, "stat", removed_meanwhile)
    atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["report.json"]
