"""Training: :func:`train` = :func:`setup` → (:func:`train_one_epoch` → :func:`validate`) per
epoch → a report from the best checkpoint.

One loop serves the Face2Nodes recipe (Adam, cosine annealing, label-smoothed cross-entropy,
Face2Nodes §4.2), the AGFN coordinate-descent mode (AGFN §3.3, :mod:`pyg_fer.engine.agfn`), a
single process or DistributedDataParallel, CPU or CUDA (mixed precision and channels-last on
CUDA only).
"""

from __future__ import annotations

import functools
import math
import random
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from pyg_fer._files import json_text
from pyg_fer.engine import checkpoint as ckpt
from pyg_fer.engine._runlock import RunLock, claim, refuse_if_held
from pyg_fer.engine import distributed as D
from pyg_fer.engine.agfn import (
    check_agfn_model,
    coordinate_descent_step,
    set_agfn_phase,
    split_parameters,
)
from pyg_fer.engine.config import CUDAGRAPH_MODES, Config, load_config, save_config
from pyg_fer.engine.datasets import (
    apply_label_noise,
    build_datasets,
    class_names,
    normalization,
)
from pyg_fer.engine.evaluate import evaluate
from pyg_fer.engine.metrics import hard_targets
from pyg_fer.engine.optim import LRFactor, build_optimizer
from pyg_fer.engine.report import read_metrics, write_report
from pyg_fer.engine.steps import compute_loss, sampled_forward, standard_step
from pyg_fer.models import create_model

__all__ = ["Run", "TrainState", "resolve_device", "seed_everything", "setup", "train",
           "train_one_epoch", "validate"]

ConfigLike = Config | str | Path | Mapping[str, Any] | None
EpochCallback = Callable[[int, nn.Module, dict[str, Any]], None]

# ----------------------------------------------------------------------------- small helpers


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``'auto'`` → CUDA (this process's local rank) when available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} (config key 'train.device', or --device) is not a "
                         "device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} (config key 'train.device', or --device) needs "
                             "CUDA, which is not available here")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


# ----------------------------------------------------------------------------- state


@dataclass
class TrainState:
    """What ``train_state.pt`` restores on ``--resume``, besides the weights and RNG states:
    the optimisers, the schedule, the gradient scaler, the last finished epoch and the best
    evaluation so far."""

    optimizer: torch.optim.Optimizer
    graph_optimizer: torch.optim.Optimizer | None
    scheduler: LambdaLR
    scaler: torch.amp.GradScaler
    epoch: int = 0
    best_value: float = -math.inf
    best_epoch: int = 0

    def update_best(self, epoch: int, value: float) -> bool:
        """Record ``value`` of ``epoch``; ``True`` when it is the best so far."""
        if value > self.best_value:
            self.best_value, self.best_epoch = value, epoch
            return True
        return False

    def state_dict(self, rngs: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``train_state.pt`` content, with every rank's RNG states ``rngs``."""
        return {
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "graph_optimizer": (self.graph_optimizer.state_dict()
                                if self.graph_optimizer is not None else None),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rngs,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (the RNG states are the caller's)."""
        self.optimizer.load_state_dict(state["optimizer"])
        if self.graph_optimizer is not None:
            self.graph_optimizer.load_state_dict(state["graph_optimizer"])
        # The schedule's shape (total steps, warm-up, ...) is the current config's, so that
        # ``train.epochs`` can extend a run; only the step count is restored. The learning rate
        # is then that schedule's at the restored step (the saved one for an unchanged config).
        sched = dict(state["scheduler"])
        sched["lr_lambdas"] = [None] * len(self.scheduler.lr_lambdas)
        self.scheduler.load_state_dict(sched)
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                                       self.scheduler.lr_lambdas, strict=True):
            group["lr"] = base * factor(self.scheduler.last_epoch)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = state["epoch"]
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]


@dataclass
class Run:
    """A training run as :func:`setup` builds it: what every epoch reads."""

    cfg: Config
    info: D.DistInfo
    device: torch.device
    run_dir: Path
    model: nn.Module  # DDP-wrapped in a distributed run
    bare: nn.Module  # the model itself
    train_ds: Dataset
    eval_ds: Dataset
    class_names: list[str]
    sampler: DistributedSampler
    loader: DataLoader
    state: TrainState
    net_params: list[nn.Parameter]
    use_amp: bool
    channels_last: bool
    noisy_labels: int = 0

    @property
    def loss_kind(self) -> str:
        return self.cfg.agfn.loss if self.cfg.agfn.enabled else "ce"

    def loss_fn(self, logits: Tensor, targets: Tensor) -> Tensor:
        return compute_loss(logits, targets, self.loss_kind, self.cfg.train.label_smoothing)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp)

    @property
    def amp_dtype(self) -> torch.dtype:
        return getattr(torch, self.cfg.train.amp_dtype)

    @property
    def cudagraphs(self) -> bool:
        """Whether the training forward replays CUDA graphs (``train.compile``)."""
        return self.cfg.train.compile in CUDAGRAPH_MODES and self.device.type == "cuda"

    @property
    def eval_kwargs(self) -> dict[str, Any]:
        """The :func:`evaluate` settings of every evaluation in the run."""
        tc = self.cfg.train
        return {
            "num_classes": len(self.class_names), "class_names": self.class_names,
            "device": self.device,
            "batch_size": tc.eval_batch_size or tc.batch_size // self.info.world_size,
            "num_workers": self.cfg.data.num_workers, "loss": self.loss_kind,
            "label_smoothing": tc.label_smoothing, "amp": self.use_amp,
            "amp_dtype": self.amp_dtype,
            "channels_last": self.channels_last, "dist_info": self.info,
        }


# ----------------------------------------------------------------------------- train()


def train(
    config: ConfigLike = None,
    *,
    overrides: Sequence[str] = (),
    train_dataset: Dataset | None = None,
    eval_dataset: Dataset | None = None,
    resume: str | Path | bool | None = None,
    on_epoch_end: EpochCallback | None = None,
    allow_recipe_changes: bool = False,
) -> dict[str, Any]:
    """Train a model as a recipe says, evaluate it every epoch, and write the run folder.

    Args:
        config: a :class:`Config`, recipe name, YAML path or mapping.
        overrides: dotted ``key=value`` overrides.
        train_dataset: use this dataset (with ``classes`` and ``targets``) instead of building
            ``cfg.data``'s training split; items are ``(image_tensor, target)``.
        eval_dataset: likewise for the evaluation split.
        resume: a run folder to continue from its ``train_state.pt`` (``True``: the folder the
            config names).
        on_epoch_end: called on every rank as ``on_epoch_end(epoch, model, record)`` after the
            epoch's checkpoints are written (``record`` is the epoch's ``metrics.jsonl`` entry).
        allow_recipe_changes: with ``resume``, accept a recipe that differs from the run's
            ``config.yaml`` beyond :data:`RESUME_MAY_CHANGE`: for branching experiments that
            continue a copied run folder under another recipe (its state must still load).

    Returns:
        A summary: ``run_dir``, ``best_epoch``, ``best`` (eval metrics of the best checkpoint),
        ``report`` (paths of the report files), ``train_time_s``. Only rank 0 writes files;
        every rank returns the same summary.
    """
    if config is None and resume not in (None, False, True):
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(f"cannot resume: '{saved}' does not exist")
        config = saved  # the run's own recipe, as `pyg-fer train --resume RUN` reads it
    cfg = load_config(config, overrides)  # a validated copy, also of a Config
    t_start = time.perf_counter()
    pre_device = resolve_device(cfg.train.device)
    info = D.init_distributed(cfg.distributed.backend, pre_device.type)
    lock, finished = None, False
    try:
        run = setup(cfg, info, train_dataset, eval_dataset, resume, allow_recipe_changes)
        if resume not in (None, False):
            _resume(run)
        if info.is_main:  # the recipe it trains under, once the data, the model and (on a
            # resume) the state have loaded: a recipe that fails to start leaves no run folder
            run.run_dir.mkdir(parents=True, exist_ok=True)
            lock = _claim_run_dir(run.run_dir, cfg, resuming=resume not in (None, False))
        # overwriting was an action at the start, not part of the recipe: the recorded recipe
        # (config.yaml, the cards) must not wipe this run when it is run again
        cfg.output.overwrite = False
        if info.is_main:
            save_config(cfg, run.run_dir / "config.yaml")
        _announce(run)
        for epoch in range(run.state.epoch + 1, cfg.train.epochs + 1):
            record = train_one_epoch(run, epoch)
            is_best = False
            if epoch % cfg.train.eval_every == 0 or epoch == cfg.train.epochs:
                metrics = validate(run)
                record.update(eval_loss=metrics["loss"], eval_acc=metrics["overall_acc"],
                              eval_mean_class_acc=metrics["mean_class_acc"])
                is_best = run.state.update_best(epoch, metrics[cfg.train.best_metric])
            run.state.epoch = epoch
            _end_epoch(run, record, is_best)
            if on_epoch_end is not None:
                on_epoch_end(epoch, run.model, record)
        summary = _final_report(run, time.perf_counter() - t_start)
        finished = True
        return summary
    finally:
        if lock is not None:
            lock.release()
        D.cleanup(info, wait=finished)


def setup(cfg: Config, info: D.DistInfo, train_ds: Dataset | None = None,
          eval_ds: Dataset | None = None, resume: str | Path | bool | None = None,
          allow_recipe_changes: bool = False) -> Run:
    """Check the recipe against this process, prepare the run folder, and build the data, the
    model (moved, DDP-wrapped), the loader, the optimisers and the schedule."""
    tc = cfg.train
    device = resolve_device(tc.device, info.local_rank)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    if tc.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if cfg.distributed.sync_bn and device.type == "cpu":
        raise ValueError("config key 'distributed.sync_bn' is true but the device is the CPU: "
                         "torch's SyncBatchNorm runs on GPUs only")
    if tc.batch_size % info.world_size:
        raise ValueError(f"config key 'train.batch_size' ({tc.batch_size}) must be divisible by "
                         f"the number of processes ({info.world_size})")
    seed_everything(tc.seed)
    run_dir = _run_dir(cfg, resume)
    if cfg.output.name is None:
        cfg.output.name = run_dir.name
    if info.is_main:
        _prepare_run_dir(run_dir, cfg, resuming=resume not in (None, False),
                         allow_recipe_changes=allow_recipe_changes)
    D.barrier(info)

    mean, std = normalization(cfg)
    train_ds, eval_ds, names, noisy = _data(cfg, train_ds, eval_ds, mean, std)
    bare = _build_model(cfg, names, mean, std)
    seed_everything(tc.seed + info.rank)  # rank-specific augmentation / dropout streams
    model, bare = _place_model(cfg, info, device, bare)
    if cfg.agfn.enabled:
        net_params, graph_params = split_parameters(bare)
    else:
        net_params, graph_params = [p for p in bare.parameters() if p.requires_grad], []

    per_rank_batch = tc.batch_size // info.world_size
    sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank,
                                 shuffle=True, seed=tc.seed, drop_last=False)
    loader = DataLoader(train_ds, batch_size=per_rank_batch, sampler=sampler,
                        num_workers=cfg.data.num_workers,
                        drop_last=len(sampler) >= per_rank_batch,
                        pin_memory=device.type == "cuda",
                        # Fresh workers every epoch, seeded from the main process's RNG, which
                        # train_state.pt restores: persistent workers would carry random state
                        # no checkpoint holds, and a resumed run would augment differently.
                        persistent_workers=False)
    if len(loader) == 0:
        raise ValueError(f"the training set ({len(train_ds)} samples) gives no batch")
    if len(eval_ds) == 0:
        raise ValueError(f"the evaluation set (split {cfg.data.eval_split!r}) is empty: nothing "
                         "to select the best epoch on")
    state = _train_state(cfg, net_params, graph_params, len(loader), device)
    return Run(cfg=cfg, info=info, device=device, run_dir=run_dir, model=model, bare=bare,
               train_ds=train_ds, eval_ds=eval_ds, class_names=names, sampler=sampler,
               loader=loader, state=state, net_params=net_params,
               use_amp=tc.amp and device.type == "cuda",
               channels_last=tc.channels_last and device.type == "cuda", noisy_labels=noisy)


def train_one_epoch(run: Run, epoch: int) -> dict[str, Any]:
    """One pass over the training set (coordinate descent once AGFN is on); returns the
    epoch's ``metrics.jsonl`` record without the evaluation fields."""
    cfg, info, state = run.cfg, run.info, run.state
    run.sampler.set_epoch(epoch)
    agfn_on = set_agfn_phase(run.bare, cfg.agfn, epoch)
    run.model.train()
    # Sums kept on the device and read once per epoch: no host synchronisation per step, so
    # the host queues the next step while the device works (the progress bar reads them
    # every _BAR_EVERY steps, and only when it draws).
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    correct_sum = torch.zeros((), dtype=torch.int64, device=run.device)
    seen = 0
    t0 = time.perf_counter()
    # The bar counts steps rather than wrapping the loader: tqdm.auto's class calls iter() on
    # what it wraps, which would start (and with workers, prefetch) the epoch a second time.
    bar = tqdm(total=len(run.loader), desc=f"epoch {epoch}/{cfg.train.epochs}", leave=False,
               dynamic_ncols=True, disable=not _show_progress(run))
    for step, (images, targets) in enumerate(run.loader, 1):
        bar.update()
        images = images.to(run.device, non_blocking=True)
        if run.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(run.device, non_blocking=True)
        if run.cudagraphs:  # a new iteration: the previous step's graph outputs may be reused
            torch.compiler.cudagraph_mark_step_begin()
        if agfn_on:
            logits, loss = coordinate_descent_step(
                run.model, images, targets, state.optimizer, state.graph_optimizer, run.loss_fn,
                graph_step=cfg.agfn.graph_step, scaler=state.scaler, autocast=run.autocast,
                grad_clip=cfg.train.grad_clip, dist_info=info,
                sample_average=cfg.agfn.sample_average)
        else:  # S > 1 graphs per step: mean of the S losses (Eq. 10) or loss of the mean output
            logits, loss = standard_step(run.model, images, targets, state.optimizer,
                                         run.loss_fn, state.scaler, run.autocast,
                                         cfg.train.grad_clip, run.net_params,
                                         functools.partial(sampled_forward,
                                                           sample_average=cfg.agfn.sample_average))
        state.scheduler.step()
        count = len(images)
        loss_sum += loss.detach().double() * count
        correct_sum += (logits.argmax(1) == hard_targets(targets)).sum()
        seen += count
        if not bar.disable and step % _BAR_EVERY == 0:
            elapsed = time.perf_counter() - t0
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}",
                            acc=f"{correct_sum.item() / seen:.3f}",
                            img_s=f"{seen * info.world_size / elapsed:.1f}")
    bar.close()
    stats = torch.tensor([loss_sum.item(), correct_sum.item(), seen], dtype=torch.float64)
    _reduce(stats, info, run.device)
    train_time = time.perf_counter() - t0
    record = {
        "epoch": epoch,
        "train_loss": stats[0].item() / stats[2].item(),
        "train_acc": stats[1].item() / stats[2].item(),
        "img_per_s": stats[2].item() / train_time,
        "lr": state.optimizer.param_groups[0]["lr"],
        "epoch_time_s": train_time,
    }
    if cfg.agfn.enabled:
        record["agfn"] = agfn_on
    return record


def validate(run: Run) -> dict[str, Any]:
    """Evaluate the model on the evaluation set (sharded over the ranks), every rank with the
    buffers of rank 0, whose weights the checkpoints hold."""
    D.broadcast_buffers(run.bare, run.info)
    return evaluate(run.model, run.eval_ds, **run.eval_kwargs)


# ----------------------------------------------------------------------------- setup parts


def _run_dir(cfg: Config, resume: str | Path | bool | None) -> Path:
    if resume not in (None, False, True):
        return Path(resume)
    name = cfg.output.name or f"{cfg.model.name}_{cfg.data.name}"
    return Path(cfg.output.dir) / name


# Settings a resumed run may change: how long it runs, how it reports, where it runs. Every
# other change (model, data, optimiser, schedule shape, seed...) would silently make the run a
# different experiment, or fail half-way through loading its state.
RESUME_MAY_CHANGE = ("train.epochs", "train.eval_every", "train.progress", "train.num_threads",
                     "train.device", "data.num_workers", "output", "distributed.nproc",
                     "distributed.backend")

# What a run writes in its folder; `output.overwrite` removes all of it first.
# (with `pyg-fer export`'s default outputs of the old weights).
RUN_FILES = ("metrics.jsonl", "train_state.pt", "best.json", "best.safetensors", "last.json",
             "last.safetensors", "config.yaml", "report.json", "report.md",
             "confusion_matrix.csv", "confusion_matrix.png", "learning_curves.png", "tsne.png",
             "best.onnx", "best.pt2", "last.onnx", "last.pt2")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a nested mapping: ``{'a': {'b': 1}}`` → ``{'a.b': 1}`` (an empty
    mapping is a value)."""
    if not isinstance(data, dict) or not data:
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _check_resume_config(run_dir: Path, cfg: Config) -> None:
    """Refuse a resume whose recipe differs from the run's ``config.yaml`` in anything but
    :data:`RESUME_MAY_CHANGE`, naming the keys."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = _flatten(load_config(saved_path).to_dict())
    new = _flatten(cfg.to_dict())
    changed = sorted(k for k in set(saved) | set(new) if saved.get(k) != new.get(k)
                     and not (k in RESUME_MAY_CHANGE
                              or k.startswith(tuple(f"{m}." for m in RESUME_MAY_CHANGE))))
    if changed:
        shown = ", ".join(f"{k} ({saved.get(k)!r} -> {new.get(k)!r})" for k in changed[:6])
        raise ValueError(
            f"cannot resume '{run_dir}' with a changed recipe: {shown}; a resumed run may change "
            f"only {', '.join(RESUME_MAY_CHANGE)} (start a new run, e.g. with another "
            "output.name, to change the others)")


def _claim_run_dir(run_dir: Path, cfg: Config, resuming: bool) -> RunLock:
    """Hold ``run_dir`` for this process (:func:`~pyg_fer.engine._runlock.claim`), so that two
    runs started at once under one name cannot mix their files. A new run re-checks here that
    no run finished in the folder while this one was set up."""
    lock = claim(run_dir)
    if not resuming and not cfg.output.overwrite:
        try:
            _refuse_existing_run(run_dir, " (written while this one was being set up)")
        except ValueError:
            lock.release()
            raise
    return lock


def _refuse_existing_run(run_dir: Path, when: str = "") -> None:
    """Refuse to start a new run (without ``output.overwrite``) in a folder that holds one."""
    if (run_dir / "metrics.jsonl").exists():
        raise ValueError(f"run folder '{run_dir}' already holds a run{when}; resume it "
                         "(--resume), pick another output.name, or set output.overwrite=true")


def check_run_dir(cfg: Config, resume: str | Path | bool | None = None,
                  allow_recipe_changes: bool = False) -> Path:
    """The run folder :func:`train` would write, checked as it checks it before building
    anything: refused if another training process holds it, if it holds a run (without
    ``output.overwrite``), or, to resume, if it has no training state or the recipe changed.
    ``pyg-fer train --nproc`` calls it before starting its processes.

    Raises:
        ValueError, FileNotFoundError: naming the folder and what to do.
    """
    run_dir = _run_dir(cfg, resume)
    _check_run_dir(run_dir, cfg, resume not in (None, False), allow_recipe_changes)
    return run_dir


def _check_run_dir(run_dir: Path, cfg: Config, resuming: bool,
                   allow_recipe_changes: bool) -> None:
    refuse_if_held(run_dir)
    if resuming:
        if not (run_dir / "train_state.pt").is_file():
            raise FileNotFoundError(f"cannot resume: '{run_dir / 'train_state.pt'}' does not "
                                    "exist")
        if not allow_recipe_changes:
            _check_resume_config(run_dir, cfg)
    elif not cfg.output.overwrite:
        _refuse_existing_run(run_dir)


def _prepare_run_dir(run_dir: Path, cfg: Config, resuming: bool,
                     allow_recipe_changes: bool = False) -> None:
    """Check (:func:`check_run_dir`) or clear the run folder (:func:`train` writes
    ``config.yaml`` into it once the run has been set up)."""
    _check_run_dir(run_dir, cfg, resuming, allow_recipe_changes)
    if not resuming and cfg.output.overwrite and (run_dir / "metrics.jsonl").exists():
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for folder in run_dir.glob("eval_*"):  # `pyg-fer eval` reports of the old weights
            if folder.is_dir():
                shutil.rmtree(folder)


def _data(cfg: Config, train_ds: Dataset | None, eval_ds: Dataset | None,
          mean: Sequence[float], std: Sequence[float]
          ) -> tuple[Dataset, Dataset, list[str], int]:
    """The given or built datasets, their (equal) class names, and the noisy-label count."""
    if train_ds is None or eval_ds is None:
        built_train, built_eval = build_datasets(cfg, mean, std)
        train_ds = train_ds if train_ds is not None else built_train
        eval_ds = eval_ds if eval_ds is not None else built_eval
    names = class_names(train_ds, "training")
    eval_names = class_names(eval_ds, "evaluation")
    if eval_names != names:
        raise ValueError(f"training classes {names} differ from evaluation classes "
                         f"{eval_names}")
    noisy = 0
    if cfg.data.label_noise > 0:
        noisy = apply_label_noise(train_ds, cfg.data.label_noise, cfg.data.label_noise_seed)
    return train_ds, eval_ds, names, noisy


def _build_model(cfg: Config, names: list[str], mean: Sequence[float],
                 std: Sequence[float]) -> nn.Module:
    """The recipe's model for these classes; its builder records the data's class names and
    normalisation in ``model.cfg``."""
    kwargs = dict(cfg.model.kwargs)
    if "num_classes" in kwargs and kwargs["num_classes"] != len(names):
        raise ValueError(f"config key 'model.kwargs.num_classes' is {kwargs['num_classes']} but "
                         f"the data has {len(names)} classes")
    kwargs.setdefault("img_size", cfg.data.img_size)
    if kwargs["img_size"] != cfg.data.img_size:
        raise ValueError(f"config key 'model.kwargs.img_size' is {kwargs['img_size']} but "
                         f"'data.img_size' is {cfg.data.img_size}")
    kwargs.update(num_classes=len(names), class_names=list(names), mean=list(mean),
                  std=list(std))
    model = create_model(cfg.model.name, **kwargs)
    check_agfn_model(model, cfg.agfn, cfg.model.name)
    return model


def _place_model(cfg: Config, info: D.DistInfo, device: torch.device,
                 model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Move the model to ``device`` (channels-last, SyncBatchNorm where asked) and wrap it in
    DDP in a distributed run; returns ``(model to call, bare model)``.

    Models that offer ``set_global_graph(bool)`` build their batch graph over the global batch
    under DDP when ``agfn.global_graph`` is on."""
    if callable(getattr(model, "set_global_graph", None)):
        model.set_global_graph(cfg.agfn.global_graph and info.enabled)
    model.to(device)
    if cfg.train.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    if info.enabled and cfg.distributed.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    wrapped = model
    if info.enabled:
        wrapped = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.agfn.enabled,
        )
    if cfg.train.compile is not None:  # around DDP, as PyTorch recommends
        mode = None if cfg.train.compile == "default" else cfg.train.compile
        wrapped = torch.compile(wrapped, mode=mode)
    return wrapped, model


def _train_state(cfg: Config, net_params: list[nn.Parameter],
                 graph_params: list[nn.Parameter], steps_per_epoch: int,
                 device: torch.device) -> TrainState:
    """Fresh optimisers (network; graph in AGFN mode), schedule and gradient scaler."""
    optim, schedule = cfg.optim, cfg.schedule
    opt = build_optimizer(optim.name, net_params, lr=optim.lr,
                          weight_decay=optim.weight_decay, momentum=optim.momentum,
                          nesterov=optim.nesterov, betas=optim.betas)
    opt_graph = None
    if cfg.agfn.enabled:
        opt_graph = build_optimizer(cfg.agfn.graph_optimizer, graph_params,
                                    lr=cfg.agfn.graph_lr, momentum=0.0)
    factor = LRFactor(schedule.name, steps_per_epoch * cfg.train.epochs,
                      warmup_steps=round(schedule.warmup_epochs * steps_per_epoch),
                      min_ratio=schedule.min_lr / optim.lr,
                      step_size=schedule.step_epochs * steps_per_epoch, gamma=schedule.gamma)
    # bfloat16 has float32's exponent range: its gradients need no scaling.
    scale = cfg.train.amp and device.type == "cuda" and cfg.train.amp_dtype == "float16"
    return TrainState(optimizer=opt, graph_optimizer=opt_graph, scheduler=LambdaLR(opt, factor),
                      scaler=torch.amp.GradScaler(device.type, enabled=scale))


def _resume(run: Run) -> None:
    """Load the weights of ``last`` and ``train_state.pt`` into ``run``; RNG states too."""
    run_dir, info = run.run_dir, run.info
    state = ckpt.load_train_state(run_dir / "train_state.pt")
    if run.cfg.train.epochs < state["epoch"]:
        raise ValueError(f"cannot resume '{run_dir}' with train.epochs={run.cfg.train.epochs}: "
                         f"it has already trained {state['epoch']} epochs (train.epochs may "
                         "only stay or grow)")
    last = run_dir / "last.json"
    meta = ckpt.read_card(last) if last.is_file() else {}
    if meta.get("epoch") == state["epoch"]:  # last.* is the state's epoch (or a branch's edit)
        weights, where = ckpt.read_weights(meta), f"'{last}'"
    elif "model" in state:  # killed between writing last.* and train_state.pt
        weights, where = state["model"], f"'{run_dir / 'train_state.pt'}'"
    else:  # a state file written before it held the weights
        raise ValueError(f"'{last}' is from epoch {meta.get('epoch')} but "
                         f"'{run_dir / 'train_state.pt'}' from epoch {state['epoch']}: the run "
                         "was interrupted while saving and this older state file holds no "
                         "weights to resume from")
    try:
        run.bare.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"cannot resume '{run_dir}': the weights in {where} do not fit the "
                         f"recipe's model '{run.cfg.model.name}': {err}") from None
    run.state.load_state_dict(state)
    rngs = state["rng"]
    if len(rngs) == info.world_size:
        ckpt.set_rng_state(rngs[info.rank])
    else:
        seed_everything(run.cfg.train.seed + info.rank + 1000 * (run.state.epoch + 1))
    if info.is_main:
        _truncate_metrics(run_dir / "metrics.jsonl", state["epoch"])


def _truncate_metrics(path: Path, last_epoch: int) -> None:
    """Drop records of epochs after ``last_epoch`` (written after the last saved state)."""
    if not path.is_file():
        return
    keep = [record for record in read_metrics(path) if record["epoch"] <= last_epoch]
    ckpt.atomic_write_text(path, "".join(json_text(record) + "\n" for record in keep))


# ----------------------------------------------------------------------------- per epoch


_BAR_EVERY = 20  # steps between progress-bar updates (each reads the sums: a host sync)


def _show_progress(run: Run) -> bool:
    """A tqdm bar only on rank 0 and only when it draws on a terminal; a log file gets the one
    ``[pyg-fer] epoch`` line per epoch instead of thousands of carriage returns."""
    return run.cfg.train.progress and run.info.is_main and sys.stderr.isatty()


def _reduce(stats: Tensor, info: D.DistInfo, device: torch.device) -> None:
    """Sum a CPU tensor over ranks (through the device for NCCL)."""
    if not info.enabled:
        return
    moved = stats.to(device) if device.type == "cuda" else stats
    D.all_reduce_sum(moved, info)
    if moved is not stats:
        stats.copy_(moved.cpu())


def _gather_rng(info: D.DistInfo) -> list[dict[str, Any]]:
    state = ckpt.rng_state()
    if not info.enabled:
        return [state]
    out: list[Any] = [None] * info.world_size
    torch.distributed.all_gather_object(out, state)
    return out


def _end_epoch(run: Run, record: dict[str, Any], is_best: bool) -> None:
    """Rank 0 writes ``last`` (and ``best``), ``train_state.pt`` and the metrics line, and
    prints the epoch line; every rank waits for it."""
    rngs = _gather_rng(run.info)
    if run.info.is_main:
        # the metrics line first, rewritten whole: killed before the state below, the resume
        # drops it (_truncate_metrics); killed after, the line is there
        metrics = run.run_dir / "metrics.jsonl"
        before = metrics.read_text(encoding="utf-8") if metrics.is_file() else ""
        ckpt.atomic_write_text(metrics, before + json_text(record) + "\n")
        extra = {"epoch": record["epoch"], "config": run.cfg.to_dict()}
        if "agfn" in record:  # the batch graph is off in the pre-training epochs
            extra["agfn_enabled"] = record["agfn"]
        weights = ckpt.cpu_state_dict(run.bare)  # copied off the device once for all files
        for stem in ("last", "best") if is_best else ("last",):
            ckpt.save_checkpoint(run.model, run.run_dir / stem, metrics=record, extra=extra,
                                 state=weights)
        # the weights go in train_state.pt too, one atomic file: a kill between two writes
        # cannot leave a state whose weights are gone
        ckpt.save_train_state(run.run_dir / "train_state.pt",
                              dict(run.state.state_dict(rngs), model=weights))
        print(_epoch_line(record, run.cfg.train.epochs, is_best), flush=True)
    D.barrier(run.info)


def _epoch_line(record: dict[str, Any], epochs: int, is_best: bool) -> str:
    line = (f"[pyg-fer] epoch {record['epoch']}/{epochs} train loss {record['train_loss']:.4f} "
            f"acc {record['train_acc']:.4f} ({record['img_per_s']:.1f} img/s)")
    if "eval_acc" in record:
        line += (f" | eval acc {record['eval_acc']:.4f} mean class "
                 f"{record['eval_mean_class_acc']:.4f}{' *' if is_best else ''}")
    return line


def _announce(run: Run) -> None:
    if not run.info.is_main:
        return
    info, noisy, cfg = run.info, run.noisy_labels, run.cfg
    if cfg.agfn.enabled and cfg.agfn.pretrain_epochs >= cfg.train.epochs:
        warnings.warn(f"agfn.pretrain_epochs ({cfg.agfn.pretrain_epochs}) >= train.epochs "
                      f"({cfg.train.epochs}): AGFN is never switched on in this run",
                      stacklevel=2)
    print(f"[pyg-fer] run folder {run.run_dir} | model {cfg.model.name} "
          f"({sum(p.numel() for p in run.bare.parameters()) / 1e6:.2f} M params) | "
          f"{len(run.train_ds)} train / {len(run.eval_ds)} eval images, "
          f"{len(run.class_names)} classes{f', {noisy} noisy labels' if noisy else ''} | "
          f"device {run.device}{f' x{info.world_size}' if info.enabled else ''}", flush=True)


def _final_report(run: Run, train_time: float) -> dict[str, Any]:
    """Rank 0 evaluates the best checkpoint as saved on disk and writes the report."""
    cfg = run.cfg
    result: dict[str, Any] = {"run_dir": str(run.run_dir), "best_epoch": run.state.best_epoch,
                              "train_time_s": train_time}
    if run.info.is_main:
        best_model = ckpt.load_model(run.run_dir / "best.json", device=run.device)
        metrics = evaluate(best_model, run.eval_ds, **dict(run.eval_kwargs, dist_info=None),
                           return_features=cfg.output.tsne)
        files = write_report(
            run.run_dir, metrics, metrics["confusion_matrix"], run.class_names,
            info={"model": cfg.model.name, "checkpoint": "best.json", "dataset": cfg.data.name,
                  "split": cfg.data.eval_split, "epoch": run.state.best_epoch,
                  "train_time_s": round(train_time, 1)},
            metrics_path=run.run_dir / "metrics.jsonl",
            tsne=(metrics["features"], metrics["targets"]) if cfg.output.tsne else None,
            seed=cfg.train.seed)
        result["best"] = {key: metrics[key] for key in ("overall_acc", "mean_class_acc",
                                                        "per_class_acc", "num_samples", "loss")}
        result["report"] = files
    return D.broadcast_object(result, run.info)
