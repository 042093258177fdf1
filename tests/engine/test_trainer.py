import csv
import json

import pytest
import torch
from _engine_tiny import (
    CLASSES,
    BlobImages,
    Killed,
    full_and_resumed,
    held_by_another_process,
    tiny_config,
)

from pyg_fer.engine import evaluate, load_config, load_model, train
from pyg_fer.engine.checkpoint import read_card
from pyg_fer.engine.trainer import LRFactor, compute_loss


def _data(n_train=192, n_eval=80):
    return BlobImages(n_train, seed=1), BlobImages(n_eval, seed=2)


def test_short_training_lowers_loss_beats_chance_and_writes_the_run(tmp_path):
    tr, ev = _data()
    result = train(tiny_config(tmp_path, train={"epochs": 4}), train_dataset=tr,
                   eval_dataset=ev)
    run = tmp_path / "run"
    assert result["run_dir"] == str(run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert result["best"]["overall_acc"] > 2 / len(CLASSES)  # chance is 1/4
    for name in ("config.yaml", "metrics.jsonl", "best.json", "best.safetensors", "last.json",
                 "last.safetensors", "train_state.pt", "report.json", "report.md",
                 "confusion_matrix.png", "confusion_matrix.csv", "learning_curves.png"):
        assert (run / name).is_file(), name
        assert (run / name).stat().st_size > 0, name
    # config.yaml reloads to the configuration that ran
    cfg = load_config(run / "config.yaml")
    assert cfg.train.epochs == 4 and cfg.model.name == "_tiny_test_mlp"
    # the best checkpoint is the epoch with the best eval accuracy, and carries it
    best = max(records, key=lambda r: r["eval_acc"])
    meta = read_card(run / "best.json")
    assert meta["epoch"] == result["best_epoch"] == best["epoch"]
    assert meta["metrics"]["eval_acc"] == best["eval_acc"]
    assert read_card(run / "last.json")["epoch"] == 4


def test_a_log_file_gets_one_line_per_epoch_and_no_progress_bar(tmp_path, capsys):
    tr, ev = _data(64, 32)
    train(tiny_config(tmp_path, train={"epochs": 2, "progress": True}), train_dataset=tr,
          eval_dataset=ev)
    out, err = capsys.readouterr()  # captured streams are not terminals
    assert "\r" not in err and "epoch 1/2" not in err
    assert [line.split(" train")[0] for line in out.splitlines() if " epoch " in line] == [
        "[pyg-fer] epoch 1/2", "[pyg-fer] epoch 2/2"]


def test_report_holds_what_it_claims(tmp_path):
    tr, ev = _data()
    train(tiny_config(tmp_path, train={"epochs": 2}), train_dataset=tr, eval_dataset=ev)
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    cm = torch.tensor(report["confusion_matrix"])
    assert cm.sum().item() == len(ev) == report["num_samples"]
    assert report["overall_acc"] == pytest.approx(cm.trace().item() / len(ev))
    per_class = {c: cm[i, i].item() / cm[i].sum().item() for i, c in enumerate(CLASSES)}
    assert report["per_class_acc"] == pytest.approx(per_class)
    assert report["mean_class_acc"] == pytest.approx(sum(per_class.values()) / len(CLASSES))
    assert report["support"] == {c: int((ev.targets == i).sum()) for i, c in enumerate(CLASSES)}
    # the report re-evaluates the saved best checkpoint: same numbers as that epoch's eval
    meta = read_card(run / "best.json")
    assert report["overall_acc"] == pytest.approx(meta["metrics"]["eval_acc"])
    with open(run / "confusion_matrix.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true\\pred", *CLASSES]
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == cm.tolist()
    md = (run / "report.md").read_text()
    assert f"{100 * report['overall_acc']:.2f}%" in md and "confusion_matrix.png" in md
    for png in ("confusion_matrix.png", "learning_curves.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_matches_manual_count_and_returns_features(tmp_path):
    tr, ev = _data()
    train(tiny_config(tmp_path, train={"epochs": 1}), train_dataset=tr, eval_dataset=ev)
    model = load_model(tmp_path / "run")
    out = evaluate(model, ev, batch_size=7, return_features=True)
    with torch.no_grad():
        preds = model(ev.images).argmax(1)
    assert out["overall_acc"] == pytest.approx((preds == ev.targets).float().mean().item())
    assert torch.equal(out["preds"], preds)
    assert out["features"].shape == (len(ev), 16)
    assert out["confusion_matrix"].sum() == len(ev)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    tr, ev = _data()
    cfg = tiny_config(tmp_path, train={"epochs": 4, "grad_clip": 1.0},
                      schedule={"warmup_epochs": 0.5})
    full_and_resumed(tmp_path, cfg, tr, ev, kill_after=2)
    ma = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    mb = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    strip = ("img_per_s", "epoch_time_s")
    assert [{k: v for k, v in json.loads(x).items() if k not in strip} for x in ma] == \
        [{k: v for k, v in json.loads(x).items() if k not in strip} for x in mb]


def test_a_kill_between_the_checkpoint_writes_still_resumes(tmp_path, monkeypatch):
    # last.* written, then killed before train_state.pt: the state of the previous epoch holds
    # its own weights, so the run resumes from it and ends as an uninterrupted one
    import pyg_fer.engine.trainer as trainer

    tr, ev = _data()
    cfg_a = tiny_config(tmp_path, train={"epochs": 3}, output={"name": "full"})
    train(cfg_a, train_dataset=tr, eval_dataset=ev)
    cfg_b = dict(cfg_a, output={"dir": str(tmp_path), "name": "killed"})
    real = trainer.ckpt.save_train_state

    class Killed(Exception):
        pass

    def save(path, state):
        if state["epoch"] == 2:
            raise Killed
        real(path, state)

    monkeypatch.setattr(trainer.ckpt, "save_train_state", save)
    with pytest.raises(Killed):
        train(cfg_b, train_dataset=tr, eval_dataset=ev)
    monkeypatch.setattr(trainer.ckpt, "save_train_state", real)
    assert read_card(tmp_path / "killed" / "last.json")["epoch"] == 2  # newer than the state
    train(cfg_b, train_dataset=tr, eval_dataset=ev, resume=tmp_path / "killed")
    a = load_model(tmp_path / "full" / "last.json").state_dict()
    b = load_model(tmp_path / "killed" / "last.json").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_metrics_lines_survive_a_kill_after_the_state_and_a_bad_line_is_named(tmp_path,
                                                                              monkeypatch):
    import pyg_fer.engine.trainer as trainer

    tr, ev = _data(64, 32)
    cfg = tiny_config(tmp_path, train={"epochs": 3})
    real = trainer.ckpt.save_train_state

    def save_then_die(path, state):
        real(path, state)
        if state["epoch"] == 2:
            raise Killed

    monkeypatch.setattr(trainer.ckpt, "save_train_state", save_then_die)
    with pytest.raises(Killed):
        train(cfg, train_dataset=tr, eval_dataset=ev)
    monkeypatch.setattr(trainer.ckpt, "save_train_state", real)
    metrics = tmp_path / "run" / "metrics.jsonl"
    assert [json.loads(x)["epoch"] for x in metrics.read_text().splitlines()] == [1, 2]
    good = metrics.read_text()
    metrics.write_text(good + '{"epoch": 3, "train_lo')  # a torn line, e.g. from an old version
    with pytest.raises(ValueError, match=r"metrics.jsonl', line 3: invalid JSON"):
        train(cfg, train_dataset=tr, eval_dataset=ev, resume=tmp_path / "run")
    metrics.write_text(good)
    train(cfg, train_dataset=tr, eval_dataset=ev, resume=tmp_path / "run")
    assert [json.loads(x)["epoch"] for x in metrics.read_text().splitlines()] == [1, 2, 3]


def test_a_run_folder_is_held_by_one_training_process_at_a_time(tmp_path, monkeypatch):
    import pyg_fer.engine.trainer as trainer
    from pyg_fer.engine._runlock import RUN_LOCK

    tr, ev = _data(32, 16)
    cfg = tiny_config(tmp_path, train={"epochs": 1})
    run = tmp_path / "run"
    run.mkdir()
    lock = run / RUN_LOCK
    with held_by_another_process(lock, "elsewhere:4242\n"):
        with pytest.raises(ValueError, match=rf"'{run}' is in use by another training process "
                                             r"\(elsewhere:4242\)"):
            train(cfg, train_dataset=tr, eval_dataset=ev)
    # the same lock once its process has ended (a killed run): taken over, released at the end
    assert lock.read_text() == "elsewhere:4242\n"
    train(cfg, train_dataset=tr, eval_dataset=ev)
    assert not lock.exists() and (run / "metrics.jsonl").is_file()
    # two runs under one name set up at once: the one that claims the folder second finds the
    # other's finished run there, and stops instead of mixing files into it
    real_setup = trainer.setup

    def setup_while_another_run_finishes(cfg_, *args, **kwargs):
        out = real_setup(cfg_, *args, **kwargs)
        (tmp_path / "two").mkdir()
        (tmp_path / "two" / "metrics.jsonl").write_text('{"epoch": 1}\n')
        return out

    monkeypatch.setattr(trainer, "setup", setup_while_another_run_finishes)
    with pytest.raises(ValueError, match="already holds a run .written while this one was"):
        train(dict(cfg, output={"dir": str(tmp_path), "name": "two"}), train_dataset=tr,
              eval_dataset=ev)
    assert not (tmp_path / "two" / RUN_LOCK).exists()


def test_a_diverged_run_stops_at_its_evaluation_and_writes_standard_json(tmp_path):
    tr, ev = _data(64, 32)
    cfg = tiny_config(tmp_path, optim={"lr": 1e30}, train={"epochs": 3, "eval_every": 2})
    with pytest.raises(ValueError, match="outputs are not finite"):
        train(cfg, train_dataset=tr, eval_dataset=ev)
    # epoch 1 (not evaluated) was written with its NaN loss as null, not a NaN literal
    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in {text}"))

    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [strict(line)["train_loss"] for line in lines] == [None]
    card = strict((tmp_path / "run" / "last.json").read_text())
    assert card["epoch"] == 1 and card["metrics"]["train_loss"] is None


def test_resume_refuses_a_changed_recipe_and_keeps_the_runs_config(tmp_path):
    tr, ev = _data(64, 32)
    cfg = tiny_config(tmp_path, train={"epochs": 1})
    train(cfg, train_dataset=tr, eval_dataset=ev)
    saved = (tmp_path / "run" / "config.yaml").read_text()
    changed = dict(cfg, optim={"name": "sgd", "lr": 0.5})
    with pytest.raises(ValueError, match=r"cannot resume .* changed recipe: optim.lr \(0.01 -> "
                                         r"0.5\), optim.name \('adam' -> 'sgd'\); a resumed run "
                                         r"may change only train.epochs"):
        train(changed, train_dataset=tr, eval_dataset=ev, resume=tmp_path / "run")
    assert (tmp_path / "run" / "config.yaml").read_text() == saved
    # a branching experiment may change the recipe, but the state must fit it; a failed
    # resume leaves the run's config.yaml alone
    wider = dict(cfg, model={"name": "_tiny_test_mlp", "kwargs": {"hidden": 32}})
    with pytest.raises(ValueError, match=r"weights in '.*last.json' do not fit the recipe's "
                                         r"model '_tiny_test_mlp'"):
        train(wider, train_dataset=tr, eval_dataset=ev, resume=tmp_path / "run",
              allow_recipe_changes=True)
    assert (tmp_path / "run" / "config.yaml").read_text() == saved
    # the Python API reads the run's own config.yaml, as the CLI does; more epochs are fine
    out = train(resume=tmp_path / "run", overrides=["train.epochs=2"], train_dataset=tr,
                eval_dataset=ev)
    assert out["best_epoch"] in (1, 2)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    # fewer epochs than it has trained: refused, the run's files untouched
    saved = (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(ValueError, match=r"train.epochs=1: it has already trained 2 epochs"):
        train(resume=tmp_path / "run", overrides=["train.epochs=1"], train_dataset=tr,
              eval_dataset=ev)
    assert (tmp_path / "run" / "config.yaml").read_text() == saved


def test_label_noise_does_not_stack_on_a_reused_dataset(tmp_path):
    tr, ev = _data(64, 32)
    clean = tr.targets.tolist()
    cfg = tiny_config(tmp_path, train={"epochs": 1}, data={"label_noise": 0.25},
                      output={"overwrite": True})
    train(cfg, train_dataset=tr, eval_dataset=ev)
    first = torch.as_tensor(tr.targets).tolist()
    train(cfg, train_dataset=tr, eval_dataset=ev)
    assert torch.as_tensor(tr.targets).tolist() == first
    assert sum(a != b for a, b in zip(first, clean, strict=True)) == 16


def test_label_noise_follows_its_seed(tmp_path):
    from pyg_fer.data import add_label_noise

    tr, ev = _data(64, 32)
    clean = tr.targets.tolist()
    masks = []
    for seed in (0, 5):
        cfg = tiny_config(tmp_path, train={"epochs": 1}, output={"name": f"s{seed}"},
                          data={"label_noise": 0.25, "label_noise_seed": seed})
        train(cfg, train_dataset=tr, eval_dataset=ev)
        noisy, mask = add_label_noise(clean, 0.25, len(CLASSES), seed=seed)
        assert torch.as_tensor(tr.targets).tolist() == noisy.tolist()
        masks.append(mask)
    assert not torch.equal(masks[0], masks[1])  # repeats with other seeds are other draws


def test_empty_evaluation_set_is_refused_before_training(tmp_path):
    tr, _ = _data(64, 32)
    cfg = tiny_config(tmp_path, train={"epochs": 1})
    with pytest.raises(ValueError, match="evaluation set .* is empty"):
        train(cfg, train_dataset=tr, eval_dataset=BlobImages(0, seed=2))
    assert not (tmp_path / "run").exists()  # no half-made run folder to trip over


def test_a_recipe_that_cannot_start_leaves_no_run_folder(tmp_path):
    cfg = tiny_config(tmp_path, data={"name": "rafdb", "root": str(tmp_path / "no_rafdb")})
    with pytest.raises(FileNotFoundError, match="no_rafdb"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_existing_run_is_not_overwritten_by_accident(tmp_path):
    tr, ev = _data(64, 32)
    cfg = tiny_config(tmp_path, train={"epochs": 1})
    train(cfg, train_dataset=tr, eval_dataset=ev)
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, train_dataset=tr, eval_dataset=ev)
    (tmp_path / "run" / "eval_best_test").mkdir()  # a `pyg-fer eval` report of the old run
    for name in ("best.onnx", "best.pt2"):  # `pyg-fer export`'s default outputs
        (tmp_path / "run" / name).write_bytes(b"old weights")
    cfg["output"]["overwrite"] = True
    train(cfg, train_dataset=tr, eval_dataset=ev, on_epoch_end=lambda *a: (
        # every file of the old run is gone before the new one writes its first epoch
        None if set(p.name for p in (tmp_path / "run").iterdir()) <= {
            "config.yaml", "metrics.jsonl", "train_state.pt", "last.json", "last.safetensors",
            "best.json", "best.safetensors", ".pyg-fer.lock"} else pytest.fail(
                "old run files left")))
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1
    # overwriting was this start's action: the recorded recipe, run again, refuses instead of
    # wiping the run
    assert load_config(tmp_path / "run" / "config.yaml").output.overwrite is False
    assert read_card(tmp_path / "run" / "best.json")["config"]["output"]["overwrite"] is False
    with pytest.raises(ValueError, match="already holds a run"):
        train(tmp_path / "run" / "config.yaml", train_dataset=tr, eval_dataset=ev)
    with pytest.raises(FileNotFoundError, match="train_state.pt"):
        train(cfg, train_dataset=tr, eval_dataset=ev, resume=tmp_path / "nothing")


def test_tsne_plot_is_written(tmp_path):
    tr, ev = _data(96, 40)
    result = train(tiny_config(tmp_path, train={"epochs": 1}, output={"tsne": True}),
                   train_dataset=tr, eval_dataset=ev)
    assert (tmp_path / "run" / "tsne.png").read_bytes()[:4] == b"\x89PNG"
    assert result["report"]["tsne_png"].endswith("tsne.png")


def test_mismatched_classes_are_refused(tmp_path):
    tr, ev = _data(64, 32)
    ev.classes = ["x", "y", "z", "w"]
    with pytest.raises(ValueError, match="differ from evaluation classes"):
        train(tiny_config(tmp_path), train_dataset=tr, eval_dataset=ev)


def test_sync_bn_on_cpu_is_refused_up_front(tmp_path):
    tr, ev = _data(32, 16)
    with pytest.raises(ValueError, match="distributed.sync_bn.*GPUs only"):
        train(tiny_config(tmp_path, distributed={"sync_bn": True}), train_dataset=tr,
              eval_dataset=ev)


def test_lr_schedule_shapes():
    f = LRFactor("cosine", total_steps=10, warmup_steps=2, min_ratio=0.1)
    assert [f(s) for s in (0, 1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.1)
    assert f(6) == pytest.approx(0.55)
    g = LRFactor("step", total_steps=10, step_size=3, gamma=0.5)
    assert [g(s) for s in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]


def test_step_schedule_decays_every_step_epochs_in_a_run(tmp_path):
    # 64 images, batch 16: 4 steps per epoch; the decay every 2 epochs is 8 steps, not 2
    tr, ev = _data(64, 32)
    cfg = tiny_config(tmp_path, train={"epochs": 5},
                      schedule={"name": "step", "step_epochs": 2, "gamma": 0.5})
    train(cfg, train_dataset=tr, eval_dataset=ev)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    lrs = [json.loads(line)["lr"] for line in lines]  # the rate at each epoch's end
    assert lrs == pytest.approx([0.01, 0.005, 0.005, 0.0025, 0.0025])


def test_losses():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    t = torch.tensor([0])
    q = torch.tensor([[1 - 0.1 + 0.1 / 3, 0.1 / 3, 0.1 / 3]])  # Eq. 12
    expected = -(q * logits.log_softmax(1)).sum()
    assert compute_loss(logits, t, "ce", 0.1).item() == pytest.approx(expected.item())
    p = logits.softmax(1)
    assert compute_loss(logits, t, "mse").item() == pytest.approx(
        ((p - torch.tensor([[1.0, 0, 0]])) ** 2).sum().item())
    soft = torch.tensor([[0.7, 0.3, 0.0]])
    assert compute_loss(logits, soft, "ce").item() == pytest.approx(
        -(soft * logits.log_softmax(1)).sum().item())


def test_resume_with_more_epochs_extends_the_cosine_schedule(tmp_path):
    """``train.epochs`` raised on resume: the cosine schedule runs over the new total (the saved
    schedule's total must not win, which would keep the learning rate at min_lr)."""
    tr, ev = _data()
    short = tiny_config(tmp_path, train={"epochs": 2}, output={"name": "run"},
                        schedule={"name": "cosine", "min_lr": 0.0})
    train(short, train_dataset=tr, eval_dataset=ev)
    longer = dict(short, train=dict(short["train"], epochs=4))
    train(longer, train_dataset=tr, eval_dataset=ev, resume=tmp_path / "run")
    lrs = [json.loads(line)["lr"] for line in
           (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    fresh_dir = tmp_path / "fresh"
    train(dict(longer, output={"dir": str(fresh_dir), "name": "run"}), train_dataset=tr,
          eval_dataset=ev)
    expected = [json.loads(line)["lr"] for line in
                (fresh_dir / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lrs) == 4 and lrs[1] == pytest.approx(0.0)  # the short run ended at min_lr
    assert lrs[2] > 0 and lrs[2:] == pytest.approx(expected[2:])


def test_training_steps_read_nothing_back_to_the_host(tmp_path, monkeypatch):
    # The epoch's loss and accuracy sums stay on the device and are read once per epoch, so
    # on a GPU the host is never made to wait inside the loop (issue 11): the number of
    # Tensor.item() calls pyg_fer makes in an epoch does not grow with its number of steps.
    # (torch's Adam reads its CPU step counters with item(); those never wait for a GPU.)
    import sys

    import pyg_fer.engine.trainer as trainer

    reads = []
    item = torch.Tensor.item

    def counting(self):
        if sys._getframe(1).f_globals.get("__name__", "").startswith("pyg_fer"):
            reads.append(1)
        return item(self)

    def reads_per_epoch(samples):
        counts = []

        def epoch(run, n):
            reads.clear()
            out = original(run, n)
            counts.append(len(reads))
            return out

        monkeypatch.setattr(trainer, "train_one_epoch", epoch)
        train(tiny_config(tmp_path / str(samples), train={"epochs": 1}),
              train_dataset=BlobImages(samples, seed=1), eval_dataset=BlobImages(16, seed=2))
        return counts[0]

    original = trainer.train_one_epoch
    monkeypatch.setattr(torch.Tensor, "item", counting)
    few, many = reads_per_epoch(32), reads_per_epoch(128)  # 2 and 8 steps of 16
    assert few == many  # all of them after the loop, once per epoch


def test_compiled_training_learns_and_saves_the_bare_model(tmp_path):
    torch._dynamo.reset()
    tr, ev = _data()
    seen = {}

    def check(epoch, model, record):
        seen[epoch] = (type(model).__name__, record["train_loss"])

    result = train(tiny_config(tmp_path, train={"epochs": 3, "compile": "default"}),
                   train_dataset=tr, eval_dataset=ev, on_epoch_end=check)
    assert {name for name, _ in seen.values()} == {"OptimizedModule"}  # the steps ran compiled
    assert seen[3][1] < seen[1][1]
    assert result["best"]["overall_acc"] > 2 / len(CLASSES)
    model = load_model(tmp_path / "run")  # plain keys: no '_orig_mod.' prefix
    assert type(model).__name__ == "TinyMLP"
    assert not any(k.startswith("_orig_mod") for k in model.state_dict())


class _AugmentedBlobs(BlobImages):
    """BlobImages with a random augmentation drawn in whichever process loads the item, and a
    log of every load (one line per item, appended by the loading process)."""

    def __init__(self, *args, log=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log = log

    def __getitem__(self, i: int):
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(f"{i}\n")
        image, target = super().__getitem__(i)
        return image + 0.5 * torch.randn_like(image), target


def test_resume_with_loader_workers_gives_the_same_weights(tmp_path):
    """Worker processes augment with seeds drawn from the restored RNG each epoch, so a killed
    and resumed run equals an uninterrupted one with workers too."""
    cfg = tiny_config(tmp_path, train={"epochs": 2}, data={"num_workers": 2})
    full_and_resumed(tmp_path, cfg, _AugmentedBlobs(64, seed=1), BlobImages(32, seed=2),
                      kill_after=1)


def test_each_training_image_is_loaded_once_per_epoch_with_workers(tmp_path):
    log = tmp_path / "loads.txt"
    tr = _AugmentedBlobs(64, seed=1, log=log)
    cfg = tiny_config(tmp_path, train={"epochs": 2, "progress": True}, data={"num_workers": 2})
    train(cfg, train_dataset=tr, eval_dataset=BlobImages(32, seed=2))
    loads = [int(x) for x in log.read_text().split()]
    assert sorted(loads) == sorted(list(range(64)) * 2)  # no epoch started twice
