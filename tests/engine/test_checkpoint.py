import json
import os
import random

import numpy as np
import pytest
import torch

from pyg_fer.engine.checkpoint import (
    atomic_write_bytes,
    load_model,
    load_train_state,
    read_card,
    rng_state,
    save_checkpoint,
    save_train_state,
    set_rng_state,
)
from pyg_fer.models import create_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = create_model("_tiny_test_mlp", num_classes=4, hidden=8, class_names=["a", "b", "c", "d"])
    m.bn.running_mean.uniform_()  # non-trivial buffers must round-trip too
    return m.eval()


def test_round_trip_rebuilds_model_and_card(tmp_path, model):
    weights, card = save_checkpoint(model, tmp_path / "best", metrics={"overall_acc": 0.5})
    assert weights.name == "best.safetensors" and card.name == "best.json"
    x = torch.randn(5, 3, 8, 8)
    for path in (card, weights, tmp_path / "best", tmp_path):
        loaded = load_model(path)
        assert not loaded.training
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
        assert loaded.cfg["class_names"] == ["a", "b", "c", "d"]
        assert loaded.cfg["kwargs"]["hidden"] == 8
        assert loaded.checkpoint["metrics"] == {"overall_acc": 0.5}
    meta = json.loads(card.read_text())
    assert meta["model"]["name"] == "_tiny_test_mlp"
    assert meta["model"]["num_classes"] == 4
    assert meta["model"]["input_size"] == [3, 8, 8]
    assert meta["model"]["mean"] == [0.5, 0.5, 0.5]
    assert meta["pyg_fer_version"]
    assert "git_hash" in meta
    assert sorted(os.listdir(tmp_path)) == ["best.json", "best.safetensors"]  # no temp files


def test_weights_kwarg_is_recorded_not_replayed(tmp_path, model):
    model.cfg["kwargs"]["weights"] = "/nowhere/resnet18_msceleb.pth"
    save_checkpoint(model, tmp_path / "m")
    meta = read_card(tmp_path / "m.json")
    assert "weights" not in meta["model"]["kwargs"]
    assert meta["model"]["init_kwargs"] == {"weights": "/nowhere/resnet18_msceleb.pth"}
    load_model(tmp_path / "m.json")  # does not try to open the pre-trained file


def test_truncated_weights_are_a_clear_error(tmp_path, model):
    weights, card = save_checkpoint(model, tmp_path / "best")
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"best.safetensors.*truncated"):
        load_model(card)


def test_foreign_or_broken_card(tmp_path, model):
    _, card = save_checkpoint(model, tmp_path / "best")
    text = card.read_text()
    card.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"best.json' is not valid JSON"):
        load_model(card)
    card.write_text(json.dumps({"state_dict": {}}))
    with pytest.raises(ValueError, match=r"best.json' is not a pyg-fer checkpoint"):
        load_model(card)
    with pytest.raises(FileNotFoundError, match="other.json"):
        load_model(tmp_path / "other.json")


def test_weights_of_another_model_do_not_fit(tmp_path, model):
    _, card = save_checkpoint(model, tmp_path / "best")
    meta = json.loads(card.read_text())
    meta["model"]["kwargs"]["hidden"] = 12
    card.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"best.json' do not fit model '_tiny_test_mlp'"):
        load_model(card)


@pytest.mark.parametrize("field, value, message", [
    (("model", "kwargs", "hiden"), 8, r"\(model '_tiny_test_mlp', its 'kwargs'\).*'hiden'"),
    (("model", "kwargs"), [1, 2], r"field 'model.kwargs' must be a mapping, got \[1, 2\]"),
    (("model", "num_classes"), "4", r"field 'model.num_classes' must be an int, got '4'"),
    (("weights",), None, r"field 'weights' must be a file name, got None"),
    (("agfn_enabled",), "false", r"field 'agfn_enabled' must be true or false, got 'false'"),
])
def test_a_hand_edited_card_names_the_field_at_fault(tmp_path, model, field, value, message):
    _, card = save_checkpoint(model, tmp_path / "best")
    meta = json.loads(card.read_text())
    node = meta
    for key in field[:-1]:
        node = node[key]
    node[field[-1]] = value
    card.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"best.json'.*" + message):
        load_model(card)


def test_the_card_records_an_evaluation_graph_switched_after_training(tmp_path):
    torch.manual_seed(0)
    agfn = create_model("agfn_resnet18", num_classes=4, feature_dim=16, img_size=32,
                        eval_graph="bank", bank_size=8).train()
    agfn(torch.randn(8, 3, 32, 32))  # fills the bank
    agfn.eval().graph_norm.eval_graph = "identity"  # as docs/agfn.md shows
    _, card = save_checkpoint(agfn, tmp_path / "m")
    assert read_card(card)["model"]["kwargs"]["eval_graph"] == "identity"
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_model(card)(x), agfn(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown eval_graph 'bnak'"):
        agfn.graph_norm.eval_graph = "bnak"


def test_model_without_cfg_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="has no 'cfg'"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x")


def test_train_state_round_trip_and_foreign_files(tmp_path, model):
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model.train()
    model(torch.randn(4, 3, 8, 8)).sum().backward()
    opt.step()
    save_train_state(tmp_path / "s.pt", {"epoch": 3, "optimizer": opt.state_dict(),
                                         "rng": [rng_state()]})
    state = load_train_state(tmp_path / "s.pt")
    assert state["epoch"] == 3
    opt2 = torch.optim.Adam(model.parameters(), lr=0.1)
    opt2.load_state_dict(state["optimizer"])
    torch.testing.assert_close(opt2.state_dict()["state"][0]["exp_avg"],
                               opt.state_dict()["state"][0]["exp_avg"])
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "s.pt").read_bytes()[:200])
    with pytest.raises(ValueError, match="trunc.pt' cannot be read"):
        load_train_state(tmp_path / "trunc.pt")
    torch.save({"evil": _Evil()}, tmp_path / "evil.pt")  # needs unpickling an arbitrary class
    with pytest.raises(ValueError, match="evil.pt' cannot be read"):
        load_train_state(tmp_path / "evil.pt")
    torch.save({"epoch": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a pyg-fer training state"):
        load_train_state(tmp_path / "other.pt")


class _Evil:
    pass


def test_rng_state_round_trip():
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_input_spec_reads_the_card_of_a_loaded_model(tmp_path):
    from pyg_fer.engine.checkpoint import input_spec
    from pyg_fer.models import create_model

    model = create_model("resnet18_fer", num_classes=3, img_size=32, class_names=["a", "b", "c"],
                         mean=(0.4, 0.5, 0.6), std=(0.3, 0.3, 0.3))
    save_checkpoint(model, tmp_path / "best")
    spec = input_spec(load_model(tmp_path / "best"))
    assert spec.input_size == (3, 32, 32) and spec.class_names == ("a", "b", "c")
    assert spec.mean == pytest.approx((0.4, 0.5, 0.6)) and spec.std == pytest.approx((0.3,) * 3)
    with pytest.raises(ValueError, match="no 'cfg'"):
        input_spec(torch.nn.Linear(2, 2))


def test_git_hash_is_pyg_fers_own_commit_or_none(tmp_path, monkeypatch):
    import subprocess

    import pyg_fer.engine.checkpoint as checkpoint

    # a wheel installed in a project's .venv: the folder above the package is the user's repo
    site = tmp_path / "proj" / ".venv" / "lib" / "site-packages"
    (site / "pyg_fer" / "engine").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tmp_path / "proj")], check=True)
    monkeypatch.setattr(checkpoint, "__file__", str(site / "pyg_fer" / "engine" / "x.py"))
    assert checkpoint.git_hash() is None
    (site / ".git").mkdir()  # a git folder without pyg-fer's setup.cfg beside it
    assert checkpoint.git_hash() is None


def test_card_fields_are_made_json_safe_and_bad_ones_named(tmp_path, model):
    from pathlib import Path

    _, card = save_checkpoint(
        model, tmp_path / "best",
        metrics={"overall_acc": np.float32(0.5), "epoch": np.int64(3), "per_class": (1, 2)},
        extra={"config": {"data": {"root": Path("/data/ferplus")}}},
    )
    meta = json.loads(card.read_text())
    assert meta["metrics"] == {"overall_acc": 0.5, "epoch": 3, "per_class": [1, 2]}
    assert meta["config"] == {"data": {"root": "/data/ferplus"}}
    with pytest.raises(ValueError, match=r"checkpoint field 'metrics.cm.raw' holds"):
        save_checkpoint(model, tmp_path / "bad", metrics={"cm": {"raw": object()}})
    model.cfg.pop("name")
    with pytest.raises(ValueError, match="has no 'cfg' dict with a 'name'"):
        save_checkpoint(model, tmp_path / "noname")


def test_wrapped_models_are_saved_as_the_bare_model(tmp_path, model):
    from pyg_fer.engine.checkpoint import unwrap

    class Wrapper(torch.nn.Module):  # what DistributedDataParallel looks like from outside
        def __init__(self, module):
            super().__init__()
            self.module = module

    compiled = torch.compile(model)  # compiles lazily: nothing is compiled here
    assert unwrap(compiled) is model
    assert unwrap(Wrapper(compiled)) is model
    save_checkpoint(Wrapper(model), tmp_path / "best")
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(load_model(tmp_path / "best")(x), model(x), rtol=0, atol=0)


def test_cpu_state_dict_is_a_copy_that_shares_no_storage():
    from safetensors.torch import save

    from pyg_fer.engine.checkpoint import cpu_state_dict

    tied = torch.nn.Sequential(torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 3, bias=False))
    tied[1].weight = tied[0].weight
    state = cpu_state_dict(tied)
    before = state["0.weight"].clone()
    save(state)  # safetensors refuses tensors that share storage
    with torch.no_grad():
        tied[0].weight.add_(1.0)
    assert torch.equal(state["0.weight"], before)


def test_input_dtype_is_that_of_the_first_floating_parameter():
    from pyg_fer.engine.checkpoint import input_dtype

    assert input_dtype(torch.nn.Linear(2, 2).double()) == torch.float64
    assert input_dtype(torch.nn.ReLU()) == torch.float32
    model = torch.nn.Module()
    model.steps = torch.nn.Parameter(torch.zeros(1, dtype=torch.long), requires_grad=False)
    model.lin = torch.nn.Linear(2, 2).half()
    assert input_dtype(model) == torch.float16


def test_input_spec_names_classes_by_index_and_names_missing_fields(tmp_path):
    from pyg_fer.engine.checkpoint import input_spec

    model = create_model("_tiny_test_mlp", num_classes=3, hidden=4)
    model.cfg["class_names"] = None
    assert input_spec(model).class_names == ("0", "1", "2")
    model.cfg["std"] = None
    with pytest.raises(ValueError, match=r"records no \['std'\] in its cfg"):
        input_spec(model)


def test_numpy_gaussian_cache_round_trips():
    np.random.seed(0)
    np.random.randn()  # leaves the second normal of the pair cached
    state = rng_state()
    a = np.random.randn(3)
    set_rng_state(state)
    np.testing.assert_array_equal(np.random.randn(3), a)


def test_missing_or_non_dict_train_state_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"training state '.*none.pt' does not exist"):
        load_train_state(tmp_path / "none.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="list.pt' is not a pyg-fer training state"):
        load_train_state(tmp_path / "list.pt")


def test_git_hash_needs_setup_cfg_beside_the_git_folder(tmp_path, monkeypatch):
    import subprocess

    import pyg_fer.engine.checkpoint as checkpoint

    proj = tmp_path / "proj"
    (proj / "pkg" / "engine").mkdir(parents=True)
    git = ["git", "-C", str(proj), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(proj)], check=True)
    monkeypatch.setattr(checkpoint, "__file__", str(proj / "pkg" / "engine" / "x.py"))
    setup = proj / "setup.cfg"
    setup.write_text("[metadata]\nname = pyg-fer\n")
    assert checkpoint.git_hash() is None  # no commit yet: git fails (and prints 'HEAD')
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    setup.unlink()
    assert checkpoint.git_hash() is None  # someone else's repository
    setup.write_text("[metadata]\nname = pyg-fer\n")
    assert checkpoint.git_hash() == head
