"""The pretrained-weights registry: files served from a temp folder through file:// URLs."""

from __future__ import annotations

import hashlib
import os
import json
import re
import sys
import types
from pathlib import Path

import pytest
import torch

import pyg_fer
from pyg_fer.engine.checkpoint import save_checkpoint
from pyg_fer.engine.publish import publish
from pyg_fer.models import pretrained as pw
from pyg_fer.models.card import load_model

KW = dict(img_size=32, embed_dim=32, depth=2, grid_size=2, k=2)
CLASSES = ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every test gets an empty cache and a clean registry, and is online."""
    monkeypatch.setenv(pw.ENV_HOME, str(tmp_path / "home"))
    monkeypatch.delenv(pw.ENV_OFFLINE, raising=False)
    before = dict(pw._entries)
    yield
    pw._entries.clear()
    pw._entries.update(before)


@pytest.fixture
def trained(tmp_path, one_thread):
    """A small Face2Nodes 'run' folder with a best checkpoint, and the model itself."""
    model = pyg_fer.create_model("face2nodes", class_names=CLASSES, mean=[0.5] * 3,
                                 std=[0.25] * 3, **KW).eval()
    with torch.no_grad():  # non-default BatchNorm statistics, so that loading them matters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    run = tmp_path / "runs" / "tiny"
    save_checkpoint(model, run / "best", metrics={"eval_acc": 0.5, "eval_mean_class_acc": 0.4},
                    extra={"epoch": 3, "config": {"data": {"name": "synthetic",
                                                           "eval_split": "test"}}})
    return run, model


def _cached_files() -> list[Path]:
    """Everything in the cache folder, temporary files included."""
    root = pw.weights_cache_dir()
    return sorted(root.iterdir()) if root.is_dir() else []


def _entry(run: Path, out: Path, **kw) -> pw.PretrainedWeights:
    entry = publish(run, out, license="MIT", name=kw.pop("name", "face2nodes.tiny"), **kw)
    pw.register_weights(entry)
    return entry


def test_a_good_file_loads_and_predicts_like_the_original(trained, tmp_path):
    run, original = trained
    entry = _entry(run, tmp_path / "served")
    assert entry.url.startswith("file://")
    assert not pw.is_cached(entry)
    # the documented cache name: <name>-<sha256[:8]>.safetensors
    assert pw.cached_file(entry) == pw.weights_cache_dir() / (
        f"face2nodes.tiny-{entry.sha256[:8]}.safetensors")
    model = pyg_fer.create_model("face2nodes", pretrained="face2nodes.tiny").eval()
    assert pw.is_cached(entry)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x), rtol=0, atol=0)
    # the card's defaults were used and recorded; provenance in cfg
    assert model.cfg["class_names"] == CLASSES and model.cfg["mean"] == [0.5] * 3
    assert model.cfg["kwargs"]["pretrained"] == "face2nodes.tiny"
    assert model.cfg["kwargs"]["embed_dim"] == 32
    # the tag alone, and pretrained=True for the model's only entry, pick the same entry
    for spec in ("tiny", True):
        again = pyg_fer.create_model("face2nodes", pretrained=spec).eval()
        with torch.no_grad():
            torch.testing.assert_close(again(x), original(x), rtol=0, atol=0)
    # a builder called directly loads them too (build_model_with_cfg does the loading)
    from pyg_fer.models.face2nodes import face2nodes

    with torch.no_grad():
        direct = face2nodes(pretrained="face2nodes.tiny").eval()
        torch.testing.assert_close(direct(x), original(x), rtol=0, atol=0)
    # the cached pair is an ordinary checkpoint
    card = pw.download_weights(entry)
    assert card == pw.cached_file(entry).with_suffix(".json")
    with torch.no_grad():
        torch.testing.assert_close(load_model(card)(x), original(x), rtol=0, atol=0)


def test_published_layout_and_entry_file_roundtrip(trained, tmp_path):
    run, _ = trained
    out = tmp_path / "served"
    entry = publish(run, out, license="MIT", name="face2nodes.tiny",
                    url_base="https://example.org/w/")
    blob = (out / "face2nodes.tiny.safetensors").read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    assert entry.sha256 == sha == json.loads((run / "best.json").read_text())["weights_sha256"]
    assert (out / "face2nodes.tiny.safetensors.sha256").read_text() == \
        f"{sha}  face2nodes.tiny.safetensors\n"
    assert json.loads((out / "face2nodes.tiny.json").read_text())["weights"] == \
        "face2nodes.tiny.safetensors"
    assert entry.url == "https://example.org/w/face2nodes.tiny.safetensors"
    assert entry.size == len(blob)
    assert f"pyg-fer train {run.resolve() / 'config.yaml'} (best epoch 3)" in entry.command
    assert f"pyg-fer eval {run.resolve() / 'best.json'}" in entry.command
    assert entry.accuracy() == "50.0% on synthetic/test (mean class 40.0%)"
    (registered,) = pw.register_weights(out / "face2nodes.tiny.entry.json")
    assert registered == entry
    with pytest.raises(ValueError, match="already registered"):
        pw.register_weights(out / "face2nodes.tiny.entry.json")


def test_publish_defaults_come_from_the_run_folder_and_its_card(trained, tmp_path, monkeypatch):
    run, _ = trained
    named = run.rename(run.parent / "tiny-run 2.b")  # the tag keeps letters, digits, _ and -
    monkeypatch.chdir(tmp_path)
    entry = publish(named, "served", license="MIT", description="a tiny test model",
                    default=True)
    assert entry.name == "face2nodes.tiny-run_2_b"
    served = tmp_path / "served" / "face2nodes.tiny-run_2_b.safetensors"
    assert served.is_file() and entry.url == served.as_uri()  # a relative out_dir, resolved
    assert entry.command == (
        f"pyg-fer train {named.resolve() / 'config.yaml'} (best epoch 3); accuracy: that run's "
        f"evaluation on synthetic/test, repeated by `pyg-fer eval {named.resolve() / 'best.json'}`")
    saved = json.loads((tmp_path / "served" / "face2nodes.tiny-run_2_b.entry.json").read_text())
    assert saved["description"] == entry.description == "a tiny test model"
    assert saved["default"] is entry.default is True


def test_publish_refuses_weights_that_do_not_match_their_card(trained, tmp_path):
    run, _ = trained
    weights = run / "best.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF  # same size, one byte changed: only the hash can tell
    weights.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=r"checkpoint weights '.*best\.safetensors' has SHA-256"):
        publish(run, tmp_path / "served", license="MIT", name="face2nodes.tiny")
    assert not (tmp_path / "served").exists()  # nothing published


def test_publish_takes_the_names_the_registry_takes_and_refuses_the_others(trained, tmp_path):
    run, _ = trained
    # a dotted tag: the registry always took it, publish used to refuse it
    entry = publish(run, tmp_path / "served", license="MIT", name="face2nodes.v1.2")
    assert entry.name == "face2nodes.v1.2"
    assert (tmp_path / "served" / "face2nodes.v1.2.safetensors").is_file()
    for bad in ("face2nodes", "face2nodes.a..b", "face2nodes.a/b", ".tiny"):
        with pytest.raises(ValueError, match=rf"entry name '{re.escape(bad)}': "):
            publish(run, tmp_path / "other", license="MIT", name=bad)
    assert not (tmp_path / "other").exists()  # refused before anything is written
    with pytest.raises(ValueError, match=r"give url_base \('https://x\.org'\) or hf_hub_id "
                                         r"\('me/fer'\), not both"):
        publish(run, tmp_path / "other", license="MIT", name="face2nodes.tiny",
                url_base="https://x.org", hf_hub_id="me/fer")  # used to pick the Hub silently
    assert not (tmp_path / "other").exists()


def test_a_wrong_hash_is_refused_naming_both_hashes(trained, tmp_path):
    run, _ = trained
    entry = publish(run, tmp_path / "served", license="MIT", name="face2nodes.tiny")
    wrong = "0" * 64
    card = dict(entry.card, weights_sha256=wrong)
    pw.register_weights(dict(entry.to_dict(), card=card))
    with pytest.raises(ValueError, match=f"SHA-256 {entry.sha256}, expected {wrong}"):
        pyg_fer.create_model("face2nodes", pretrained="face2nodes.tiny")
    assert _cached_files() == []  # nothing kept, no temp file


def test_a_truncated_download_is_not_left_in_the_cache(trained, tmp_path):
    run, _ = trained
    entry = _entry(run, tmp_path / "served")
    served = tmp_path / "served" / "face2nodes.tiny.safetensors"
    served.write_bytes(served.read_bytes()[:1000])  # the server has half a file
    with pytest.raises(ValueError, match="was not kept in the cache"):
        pw.download_weights(entry, progress=False)
    assert _cached_files() == []


def test_an_interrupted_download_is_not_left_in_the_cache(trained, tmp_path, monkeypatch):
    run, _ = trained
    entry = _entry(run, tmp_path / "served")

    class Broken:
        headers = {"Content-Length": "100000"}

        def __init__(self):
            self.sent = False

        def read(self, n):
            if self.sent:
                raise ConnectionResetError("connection reset by peer")
            self.sent = True
            return b"x" * 100

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(pw.urllib.request, "urlopen", lambda url, timeout: Broken())
    with pytest.raises(ConnectionResetError):
        pw.download_weights(entry, progress=False)
    assert _cached_files() == []
    # a short read with a Content-Length is refused as well
    short = Broken()
    short.read = lambda n, _s=[b"x" * 100]: _s.pop() if _s else b""
    monkeypatch.setattr(pw.urllib.request, "urlopen", lambda url, timeout: short)
    with pytest.raises(OSError, match="stopped after 100 of 100000 bytes"):
        pw.download_weights(entry, progress=False)
    assert _cached_files() == []


def test_an_unreachable_url_says_where_to_put_the_file(trained, tmp_path):
    run, _ = trained
    entry = _entry(run, tmp_path / "served")
    (tmp_path / "served" / "face2nodes.tiny.safetensors").unlink()
    with pytest.raises(OSError, match=f"save the file as {pw.cached_file(entry)}"):
        pw.download_weights(entry, progress=False)
    assert _cached_files() == []


def test_offline_uses_the_cache_or_says_what_to_download(trained, tmp_path, monkeypatch):
    run, original = trained
    entry = _entry(run, tmp_path / "served")
    monkeypatch.setenv(pw.ENV_OFFLINE, "1")
    target = pw.cached_file(entry)
    with pytest.raises(FileNotFoundError) as err:
        pyg_fer.create_model("face2nodes", pretrained="face2nodes.tiny")
    msg = str(err.value)
    assert entry.url in msg and str(target) in msg and entry.sha256 in msg
    # placing the file by hand (as the message says) is enough, offline
    target.parent.mkdir(parents=True)
    target.write_bytes((tmp_path / "served" / "face2nodes.tiny.safetensors").read_bytes())
    model = pyg_fer.create_model("face2nodes", pretrained="face2nodes.tiny").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x), rtol=0, atol=0)


def test_a_corrupted_cached_file_is_refused(trained, tmp_path):
    run, _ = trained
    entry = _entry(run, tmp_path / "served")
    pw.download_weights(entry, progress=False)
    target = pw.cached_file(entry)
    target.write_bytes(b"\0" + target.read_bytes()[1:])
    with pytest.raises(ValueError, match=f"expected {entry.sha256}.*delete it"):
        pyg_fer.create_model("face2nodes", pretrained="face2nodes.tiny")


def test_unknown_names_list_the_valid_ones(trained, tmp_path):
    run, _ = trained
    _entry(run, tmp_path / "served")
    with pytest.raises(ValueError, match=r"unknown pretrained weights 'nope'.*face2nodes\.tiny"):
        pyg_fer.create_model("face2nodes", pretrained="nope")
    with pytest.raises(ValueError, match=r"unknown pretrained weights 'x\.y'; registered: "
                                         r"face2nodes\.tiny"):
        pw.get_weights("x.y")
    with pytest.raises(ValueError, match=r"model 'resnet18_fer' has no pretrained weights.*"
                                         r"all entries: face2nodes\.tiny"):
        pyg_fer.create_model("resnet18_fer", pretrained=True)
    with pytest.raises(ValueError, match="are for model 'face2nodes', not 'face2nodes_mr'"):
        pyg_fer.create_model("face2nodes_mr", pretrained="face2nodes.tiny")
    # pretrained=True: a model's only entry, but of two with no default neither
    assert pw.resolve_weights("face2nodes", True).name == "face2nodes.tiny"
    _entry(run, tmp_path / "served2", name="face2nodes.tiny2")
    with pytest.raises(ValueError, match=r"model 'face2nodes' has no single default pretrained "
                                         r"weights; name one of: face2nodes\.tiny, "
                                         r"face2nodes\.tiny2"):
        pw.resolve_weights("face2nodes", True)


def test_kwargs_that_change_the_architecture_are_named(trained, tmp_path):
    run, _ = trained
    _entry(run, tmp_path / "served")
    with pytest.raises(ValueError, match=r"built with \{'embed_dim': 64\} \(the card says "
                                         r"\{'embed_dim': 32\}\)"):
        pyg_fer.create_model("face2nodes", pretrained="tiny", embed_dim=64)
    # metadata overrides are fine
    model = pyg_fer.create_model("face2nodes", pretrained="tiny", mean=[0.4] * 3)
    assert model.cfg["mean"] == [0.4] * 3


def test_invalid_entries_are_refused(trained, tmp_path):
    run, _ = trained
    entry = publish(run, tmp_path / "served", license="MIT", name="face2nodes.tiny")
    good = entry.to_dict()
    bad = [
        (dict(good, url="http://example.org/a.safetensors"), "must start with https:// or"),
        (dict(good, url="https://example.org/a.pth"), "must name a .safetensors file"),
        (dict(good, hf_hub_id="org/repo"), "exactly one of 'url' and 'hf_hub_id'"),
        (dict(good, name="resnet18_fer.tiny"), "describes model 'face2nodes'"),
        (dict(good, name="tiny"), "'<model>.<tag>'"),
        # the name becomes a cache file name: no separators, no '..'
        (dict(good, name="face2nodes.a/../../../escape"), "may hold only letters"),
        (dict(good, name="face2nodes.a..b"), "may hold only letters"),
        (dict(good, license=""), "licence is empty"),
        (dict(good, card=dict(good["card"], format="other")), "not a pyg-fer checkpoint card"),
    ]
    for item, message in bad:
        with pytest.raises(ValueError, match=message):
            pw.register_weights(item)


def test_the_shipped_registry_file_is_valid_and_read():
    data = json.loads(pw.SHIPPED.read_text())
    assert isinstance(data["entries"], list)
    assert set(pw.list_pretrained()) >= {e["name"] for e in data["entries"]}


def test_hub_entries_need_huggingface_hub(trained, tmp_path, monkeypatch):
    run, original = trained
    entry = publish(run, tmp_path / "served", license="MIT", name="face2nodes.tiny",
                    hf_hub_id="someone/pyg-fer-tiny")
    assert entry.url is None and entry.source == \
        "hf://someone/pyg-fer-tiny/face2nodes.tiny.safetensors@main"
    pw.register_weights(entry)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(ImportError, match=r'pip install "pyg-fer\[hub\]"'):
        pw.download_weights(entry, progress=False)
    monkeypatch.setenv(pw.ENV_OFFLINE, "1")
    with pytest.raises(FileNotFoundError, match="huggingface-cli download someone/pyg-fer-tiny "
                                                "face2nodes.tiny.safetensors --revision main"):
        pw.download_weights(entry, progress=False)
    monkeypatch.delenv(pw.ENV_OFFLINE)
    # with the package present, its download is verified and copied into the cache
    calls = []

    def hf_hub_download(repo_id, filename, revision):
        calls.append((repo_id, filename, revision))
        return str(tmp_path / "served" / filename)

    fake = types.ModuleType("huggingface_hub")
    fake.hf_hub_download = hf_hub_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    model = pyg_fer.create_model("face2nodes", pretrained="tiny").eval()
    assert calls == [("someone/pyg-fer-tiny", "face2nodes.tiny.safetensors", "main")]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x), rtol=0, atol=0)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(pw.ENV_HOME, str(tmp_path / "h"))
    assert pw.weights_cache_dir() == tmp_path / "h" / "weights"
    monkeypatch.delenv(pw.ENV_HOME)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pw.weights_cache_dir() == tmp_path / "xdg" / "pyg_fer" / "weights"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert pw.weights_cache_dir() == Path.home() / ".cache" / "pyg_fer" / "weights"


def test_cli_publish_then_weights_lists_downloads_and_predict_reads_the_cache(
        trained, tmp_path, capsys, monkeypatch):
    from pyg_fer.cli import main

    run, _ = trained
    out = tmp_path / "served"
    assert main(["weights"]) == 0
    assert "no pretrained weights registered" in capsys.readouterr().err
    assert main(["publish", str(run), str(out), "--license", "MIT"]) == 0
    printed = capsys.readouterr()
    entry = json.loads(printed.out)
    assert entry["name"] == "face2nodes.tiny" and entry["license"] == "MIT"
    assert entry == json.loads((out / "face2nodes.tiny.entry.json").read_text())
    assert "paste the entry above" in printed.err
    assert main(["weights", "--add", str(out / "face2nodes.tiny.entry.json")]) == 0
    line = capsys.readouterr().out.strip().split("\t")
    assert line[:2] == ["face2nodes.tiny", "face2nodes"]
    assert line[3:6] == ["MIT", "50.0% on synthetic/test (mean class 40.0%)", "not cached"]
    assert line[6] == entry["url"]
    monkeypatch.setenv(pw.ENV_OFFLINE, "1")
    assert main(["weights", "--download", "face2nodes.tiny"]) == 2
    assert "are not in the cache" in capsys.readouterr().err
    monkeypatch.delenv(pw.ENV_OFFLINE)
    assert main(["weights", "--download", "face2nodes.tiny"]) == 0
    card = Path(capsys.readouterr().out.strip())
    assert card == pw.cached_file("face2nodes.tiny").with_suffix(".json")
    # a registered name where a checkpoint path belongs: the error says how to get the path
    assert main(["export", "face2nodes.tiny"]) == 2
    assert ("'face2nodes.tiny' is registered weights: `pyg-fer weights --download "
            "face2nodes.tiny`") in capsys.readouterr().err
    assert main(["weights", "tiny*"]) == 0
    assert "no pretrained weights registered match" in capsys.readouterr().err
    assert main(["weights", "face2nodes.*"]) == 0
    line = capsys.readouterr().out.strip().split("\t")
    assert line[5:] == ["cached", str(pw.cached_file("face2nodes.tiny"))]
    assert main(["publish", str(run), str(out), "--license", "MIT", "--name", "bad",
                 "--command", "pyg-fer train x"]) == 2
    err = capsys.readouterr().err  # --command is not taken for the subcommand's name
    assert err.startswith("pyg-fer publish: error:") and "must be '<model>.<tag>'" in err


def test_entry_files_in_the_environment_are_registered_for_every_command(
        trained, tmp_path, monkeypatch, capsys):
    """``$PYG_FER_WEIGHTS`` registers published entry files in every process, so a shell
    command can train from a published entry; changing the variable changes the registry."""
    from pyg_fer.cli import main

    run, model = trained
    out = tmp_path / "served"
    publish(run, out, license="MIT", name="face2nodes.tiny")
    entry_file = out / "face2nodes.tiny.entry.json"
    monkeypatch.setenv(pw.ENV_ENTRIES, f"{entry_file}{os.pathsep}")  # empty parts are ignored
    assert pw.list_pretrained() == ["face2nodes.tiny"]
    loaded = pyg_fer.create_model("face2nodes", pretrained="face2nodes.tiny")
    torch.testing.assert_close(loaded.state_dict(), model.state_dict(), rtol=0, atol=0)
    assert main(["weights"]) == 0
    assert capsys.readouterr().out.startswith("face2nodes.tiny\tface2nodes\t")
    # `pyg-fer train RECIPE model.kwargs.pretrained=...` starts from it and records it.
    recipe = tmp_path / "ft.yaml"
    recipe.write_text(f"""
model: {{name: face2nodes, kwargs: {{}}}}
data: {{name: synthetic, img_size: 32, options: {{img_size: 32}},
        train_options: {{num_samples: 32}}, eval_options: {{num_samples: 16}}}}
train: {{epochs: 1, batch_size: 16, device: cpu, progress: false}}
output: {{dir: {tmp_path / 'runs'}, name: ft}}
""")
    assert main(["train", str(recipe), "model.kwargs.pretrained=face2nodes.tiny"]) == 0
    card = json.loads((tmp_path / "runs" / "ft" / "last.json").read_text())
    assert card["model"]["init_kwargs"] == {"pretrained": "face2nodes.tiny"}
    assert card["model"]["kwargs"]["embed_dim"] == KW["embed_dim"]  # the entry's architecture
    # Unset: the entry is gone again.
    monkeypatch.setenv(pw.ENV_ENTRIES, "")
    assert pw.list_pretrained() == []
    with pytest.raises(ValueError, match=r"registered: \(none\) \(add an entry file with "
                                         r"\$PYG_FER_WEIGHTS or register_weights\)"):
        pw.get_weights("face2nodes.tiny")
    # A bad file is an error naming the variable and the file, every time it is asked; the
    # good files of the same value are not left half-registered.
    bad = tmp_path / "bad.entry.json"
    bad.write_text("{")
    monkeypatch.setenv(pw.ENV_ENTRIES, os.pathsep.join([str(entry_file), str(bad)]))
    for _ in range(2):
        with pytest.raises(ValueError, match=r"\$PYG_FER_WEIGHTS: cannot read weights registry "
                                             r"file '.*bad\.entry\.json'"):
            pw.list_pretrained()
        assert "face2nodes.tiny" not in pw._entries


@pytest.mark.parametrize("value, offline", [("1", True), ("TRUE", True), (" Yes ", True),
                                            ("On", True), ("0", False), ("", False)])
def test_offline_switch_values(monkeypatch, value, offline):
    monkeypatch.setenv(pw.ENV_OFFLINE, value)
    assert pw._offline() is offline


def test_the_cached_card_is_rewritten_when_stale_and_keeps_no_private_fields(trained, tmp_path):
    run, _ = trained
    entry = _entry(run, tmp_path / "served")
    pw.unregister_weights(entry.name)
    entry = pw.PretrainedWeights(**dict(entry.to_dict(), card=dict(entry.card, _note="x")))
    assert "_note" not in entry.to_dict()["card"]
    card_path = pw.download_weights(entry, progress=False)
    good = card_path.read_text()
    assert "_note" not in json.loads(good)
    card_path.write_text(good.replace("face2nodes", "resnet18_fer"))
    assert pw.download_weights(entry, progress=False) == card_path
    assert card_path.read_text() == good
