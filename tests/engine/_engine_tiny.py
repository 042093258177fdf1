"""Tiny registered models and datasets for the engine tests (importable by spawned workers)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from pyg_fer.models import build_model_with_cfg, is_model, register_model

IMG = 8
CLASSES = ["anger", "happy", "sad", "surprise"]
#: The builders' defaults; ``model.cfg`` is written by ``build_model_with_cfg`` as for every model.
_TINY_DEFAULTS = {"img_size": IMG, "hidden": 16, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


class TinyMLP(nn.Module):
    """Flatten → Linear → BatchNorm → ReLU → Linear."""

    def __init__(self, num_classes: int = 4, img_size: int = IMG, hidden: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3 * img_size * img_size, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.fc1(x.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.forward_features(x))


class TinyAGFN(nn.Module):
    """A tiny AGFN-like model: features X, a batch graph P_ij = 1 − exp(−relu(α·cos_ij + β)),
    X̂ = D^{-1/2}(P + I)D^{-1/2} X W_g, logits = W_c X̂. α, β are the graph parameters."""

    def __init__(self, num_classes: int = 4, img_size: int = IMG, hidden: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3 * img_size * img_size, hidden)
        self.gcn = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.bn = nn.BatchNorm1d(hidden)
        self.alpha = nn.Parameter(torch.tensor(1.4))
        self.beta = nn.Parameter(torch.tensor(0.1))
        self.agfn_enabled = True

    def graph_parameters(self):
        return iter([self.alpha, self.beta])

    def network_parameters(self):
        graph = {id(self.alpha), id(self.beta)}
        return (p for p in self.parameters() if id(p) not in graph)

    def set_agfn_enabled(self, enabled: bool) -> None:
        self.agfn_enabled = bool(enabled)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.fc1(x.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.forward_features(x)
        if self.agfn_enabled:
            hn = nn.functional.normalize(h, dim=1)
            lam = torch.relu(self.alpha * hn @ hn.t() + self.beta)
            a = 1 - torch.exp(-lam) + torch.eye(len(h))
            d = a.sum(1).rsqrt()
            h = (d[:, None] * a * d[None, :]) @ self.gcn(h)
        return self.fc2(h)


class TinyAGFNLayer(nn.Module):
    """Flatten → Linear → ReLU → :class:`~pyg_fer.nn.AGFN` → Linear: the real AGFN layer on a
    model without BatchNorm, so that a global batch split over processes under DDP computes the
    same thing as one process holding it."""

    def __init__(self, num_classes: int = 4, img_size: int = IMG, hidden: int = 5,
                 num_samples: int = 2, bank_size: int = 6, global_graph: bool = False) -> None:
        super().__init__()
        from pyg_fer.nn import AGFN

        self.fc1 = nn.Linear(3 * img_size * img_size, hidden)
        self.agfn = AGFN(hidden, hidden, num_samples=num_samples, eval_graph="bank",
                         bank_size=bank_size, global_graph=global_graph)
        self.fc2 = nn.Linear(hidden, num_classes)

    def graph_parameters(self):
        return self.agfn.graph_parameters()

    def network_parameters(self):
        graph = {id(p) for p in self.graph_parameters()}
        return (p for p in self.parameters() if id(p) not in graph)

    def set_agfn_enabled(self, enabled: bool) -> None:
        self.agfn.use_graph = bool(enabled)

    def set_global_graph(self, enabled: bool) -> None:
        self.agfn.global_graph = bool(enabled)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.agfn(torch.relu(self.fc1(x.flatten(1))))

    def forward(self, x: torch.Tensor, return_samples: bool = False) -> torch.Tensor:
        h = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(self.agfn(h, return_samples=return_samples))


if not is_model("_tiny_test_mlp"):

    @register_model
    def _tiny_test_mlp(*, num_classes: int = 4, **kwargs) -> nn.Module:
        return build_model_with_cfg(TinyMLP, "_tiny_test_mlp", _TINY_DEFAULTS,
                                    dict(kwargs, num_classes=num_classes))

    @register_model
    def _tiny_test_agfn(*, num_classes: int = 4, **kwargs) -> nn.Module:
        return build_model_with_cfg(TinyAGFN, "_tiny_test_agfn", _TINY_DEFAULTS,
                                    dict(kwargs, num_classes=num_classes))

    @register_model
    def _tiny_test_agfn_layer(*, num_classes: int = 4, **kwargs) -> nn.Module:
        return build_model_with_cfg(TinyAGFNLayer, "_tiny_test_agfn_layer",
                                    dict(_TINY_DEFAULTS, hidden=5),
                                    dict(kwargs, num_classes=num_classes))


class BlobImages(Dataset):
    """Class ``c`` = a class-specific random template + Gaussian noise; learnable but noisy."""

    def __init__(self, n: int, seed: int, noise: float = 3.0, img_size: int = IMG) -> None:
        g = torch.Generator().manual_seed(1234)  # same templates for every split
        templates = torch.randn(len(CLASSES), 3, img_size, img_size, generator=g)
        g = torch.Generator().manual_seed(seed)
        self.targets = torch.randint(len(CLASSES), (n,), generator=g)
        self.images = templates[self.targets] + noise * torch.randn(
            n, 3, img_size, img_size, generator=g)
        self.classes = list(CLASSES)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.images[i], int(self.targets[i])


def tiny_config(tmp_path: Path, **sections) -> dict:
    """A recipe for the tiny model on CPU, writing under ``tmp_path``."""
    cfg = {
        "model": {"name": "_tiny_test_mlp", "kwargs": {"hidden": 16}},
        "data": {"name": "synthetic", "img_size": IMG},
        "optim": {"lr": 1e-2},
        "train": {"epochs": 3, "batch_size": 16, "device": "cpu", "progress": False,
                  "label_smoothing": 0.1},
        "output": {"dir": str(tmp_path), "name": "run"},
    }
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    return cfg


class Killed(Exception):
    """Raised from ``on_epoch_end`` to stand for a run killed after that epoch."""


def full_and_resumed(tmp_path: Path, cfg: dict, tr: Dataset, ev: Dataset,
                     kill_after: int) -> None:
    """Train ``cfg`` uninterrupted into ``full/``, and into ``killed/`` killed after epoch
    ``kill_after`` then resumed; both runs' last weights must be bit-identical."""
    from pyg_fer.engine import load_model, read_card, train

    cfg = dict(cfg, output={"dir": str(tmp_path), "name": "full"})
    train(cfg, train_dataset=tr, eval_dataset=ev)

    def kill(epoch, model, record):
        if epoch == kill_after:
            raise Killed

    cfg_b = dict(cfg, output={"dir": str(tmp_path), "name": "killed"})
    try:
        train(cfg_b, train_dataset=tr, eval_dataset=ev, on_epoch_end=kill)
    except Killed:
        pass
    else:
        raise AssertionError("the run was not killed")
    assert read_card(tmp_path / "killed" / "last.json")["epoch"] == kill_after
    train(cfg_b, train_dataset=tr, eval_dataset=ev, resume=tmp_path / "killed")
    a = load_model(tmp_path / "full" / "last.json").state_dict()
    b = load_model(tmp_path / "killed" / "last.json").state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def ddp_worker(out_dir: str, epochs: int) -> None:
    """Body of one process of the 2-process gloo test: train, then dump this rank's params."""
    import pyg_fer.engine.trainer as trainer

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    out = Path(out_dir)
    saves = []
    original = trainer.ckpt.save_checkpoint

    def counting_save(model, stem, **kwargs):
        saves.append(Path(stem).name)
        return original(model, stem, **kwargs)

    trainer.ckpt.save_checkpoint = counting_save
    records = []

    def on_epoch_end(epoch, model, record):
        records.append(record["train_loss"])
        bare = model.module if hasattr(model, "module") else model
        torch.save({k: v.detach().clone() for k, v in bare.named_parameters()},
                   out / f"rank{rank}_epoch{epoch}.pt")

    cfg = tiny_config(out, train={"epochs": epochs, "batch_size": 16},
                      distributed={"backend": "gloo"})
    result = trainer.train(cfg, train_dataset=BlobImages(96, seed=1),
                           eval_dataset=BlobImages(40, seed=2), on_epoch_end=on_epoch_end)
    (out / f"rank{rank}_best.json").write_text(json.dumps(result["best"], default=str))
    (out / f"rank{rank}_saves.txt").write_text("\n".join(saves))
    (out / f"rank{rank}_losses.txt").write_text("\n".join(f"{x!r}" for x in records))


class _FailsOnRank1(BlobImages):
    """Rank 1 fails at its ``fail_at``-th image (a corrupt file met by one process only)."""

    def __init__(self, *args, fail_at: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_at, self.seen = fail_at, 0

    def __getitem__(self, i: int):
        self.seen += 1
        if os.environ["RANK"] == "1" and self.seen == self.fail_at:
            raise RuntimeError("rank 1 met a bad image")
        return super().__getitem__(i)


def failing_rank_worker(out_dir: str) -> None:
    """Body of the test where rank 1 fails inside its first epoch, while rank 0 is inside a
    collective of the training step."""
    from pyg_fer.engine.trainer import train

    torch.set_num_threads(1)
    cfg = tiny_config(Path(out_dir), train={"epochs": 2, "batch_size": 16},
                      distributed={"backend": "gloo"})
    train(cfg, train_dataset=_FailsOnRank1(96, seed=1, fail_at=20),
          eval_dataset=BlobImages(40, seed=2))



_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, sys.argv[2].encode())
print("held", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def held_by_another_process(path: Path, text: str) -> Iterator[int]:
    """``path`` flocked by another live process that wrote ``text`` into it (its pid given)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), text],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "held\n"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
