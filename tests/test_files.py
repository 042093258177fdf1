"""pyg_fer._files: atomic writes keep the permissions an ordinary write would give; JSON text
is standard JSON."""

import hashlib
import json
import os
import stat

import pytest

from pyg_fer._files import atomic_path, atomic_write_text, json_text, sha256_file


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


def test_missing_folders_are_created_and_text_is_written_as_utf8(tmp_path):
    target = tmp_path / "run" / "eval" / "report.md"
    atomic_write_text(target, "accuracy – 42 % (ü)")
    assert target.read_bytes() == "accuracy – 42 % (ü)".encode("utf-8")


def test_the_temporary_file_is_hidden_beside_the_target_with_the_given_suffix(tmp_path):
    # writers such as Pillow choose the format from the temporary file's suffix
    target = tmp_path / "ann" / "face.png"
    with atomic_path(target, suffix=".png") as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".face.png.")
        assert tmp.suffix == ".png" and tmp.is_file() and tmp.stat().st_size == 0
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png" and os.listdir(target.parent) == ["face.png"]


def test_a_temporary_name_already_taken_is_not_reused(tmp_path, monkeypatch):
    import pyg_fer._files as files

    names = iter(["0" * 12, "1" * 12])
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(names))
    taken = tmp_path / f".log.txt.{'0' * 12}.tmp"  # another writer's temporary file
    taken.write_text("theirs")
    atomic_write_text(tmp_path / "log.txt", "mine")
    assert (tmp_path / "log.txt").read_text() == "mine" and taken.read_text() == "theirs"


def test_json_text_sanitises_tuples_and_nested_values_and_passes_dumps_options():
    value = {"range": (0.5, float("-inf")), "runs": [{"loss": float("nan")}], "b": 1}
    assert json_text(value) == '{"range": [0.5, null], "runs": [{"loss": null}], "b": 1}'
    assert json_text({"b": 1, "a": [2]}, indent=2, sort_keys=True) == \
        json.dumps({"a": [2], "b": 1}, indent=2)


def test_sha256_file_hashes_every_chunk(tmp_path):
    data = bytes(range(256)) * 5
    path = tmp_path / "weights.safetensors"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == sha256_file(path, chunk_size=7) == expected
