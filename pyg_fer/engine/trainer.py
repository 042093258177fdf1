"""Training and evaluation loops: :func:`train` and :func:`evaluate`.

One loop serves the Face2Nodes recipe (Adam, cosine annealing, label-smoothed cross-entropy,
Face2Nodes §4.2), the AGFN coordinate-descent mode (AGFN §3.3), a single process or
DistributedDataParallel, CPU or CUDA (mixed precision and channels-last on CUDA only).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from pyg_fer.engine import checkpoint as ckpt
from pyg_fer.engine import distributed as D
from pyg_fer.engine.config import Config, load_config, save_config
from pyg_fer.engine.metrics import confusion_matrix, hard_targets, summarize_confusion

ConfigLike = Union[Config, str, Path, Mapping[str, Any], None]  # noqa: UP007

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
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"config key 'train.device' is '{name}' but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def compute_loss(logits: Tensor, targets: Tensor, kind: str = "ce",
                 label_smoothing: float = 0.0) -> Tensor:
    """Training objective.

    ``'ce'``: Face2Nodes Eq. 11–12, cross-entropy against ``q = (1 − ξ)·π + ξ/C`` (``targets``
    may be class indices ``[B]`` or probability vectors ``[B, C]``).
    ``'mse'``: AGFN Eq. 7, ``‖softmax(f(X̂)) − y‖²`` with ``y`` one-hot (or the soft target),
    averaged over the batch.
    """
    logits = logits.float()
    if kind == "ce":
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    if kind == "mse":
        if targets.dim() == 1:
            targets = F.one_hot(targets.long(), logits.shape[1]).to(logits.dtype)
        return (logits.softmax(dim=1) - targets).pow(2).sum(dim=1).mean()
    raise ValueError(f"unknown loss '{kind}'; valid: ce, mse")


def build_optimizer(name: str, params: Iterable[nn.Parameter], *, lr: float,
                    weight_decay: float = 0.0, momentum: float = 0.9, nesterov: bool = False,
                    betas: Sequence[float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    """``'adam'``, ``'adamw'`` or ``'sgd'`` over ``params``."""
    params = list(params)
    if not params:
        raise ValueError(f"optimizer '{name}' got no parameters")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum,
                               nesterov=nesterov and momentum > 0)
    raise ValueError(f"unknown optimizer '{name}'; valid: adam, adamw, sgd")


class LRFactor:
    """Per-iteration learning-rate factor for :class:`torch.optim.lr_scheduler.LambdaLR`.

    Linear warm-up over ``warmup_steps``, then ``'cosine'`` annealing from 1 to
    ``min_ratio`` at ``total_steps``, ``'step'`` decay by ``gamma`` every ``step_size`` steps,
    or ``'constant'``. A plain object (not a closure) so that the scheduler's state dict holds
    only numbers.
    """

    def __init__(self, name: str, total_steps: int, warmup_steps: int = 0,
                 min_ratio: float = 0.0, step_size: int = 1, gamma: float = 0.1) -> None:
        self.name = name
        self.total_steps = max(1, total_steps)
        self.warmup_steps = warmup_steps
        self.min_ratio = min_ratio
        self.step_size = max(1, step_size)
        self.gamma = gamma

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.name == "cosine":
            t = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
            return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if self.name == "step":
            return self.gamma ** ((step - self.warmup_steps) // self.step_size)
        return 1.0


def _has_agfn(model: nn.Module) -> bool:
    return callable(getattr(model, "graph_parameters", None)) and callable(
        getattr(model, "network_parameters", None)
    )


@contextlib.contextmanager
def _frozen(params: Sequence[nn.Parameter]):
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)


@contextlib.contextmanager
def _preserved_buffers(model: nn.Module):
    """Restore every buffer (BatchNorm running statistics) on exit."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)


def _clip(params: Sequence[nn.Parameter], max_norm: float | None) -> None:
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)


# ----------------------------------------------------------------------------- data


def _imagenet_stats() -> tuple:
    try:
        from pyg_fer.data import IMAGENET_MEAN, IMAGENET_STD

        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    except ImportError:
        return [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def build_datasets(cfg: Config, mean: Sequence[float], std: Sequence[float]):
    """Training and evaluation datasets of ``cfg.data`` with the recipe's transforms."""
    from pyg_fer.data import build_dataset, build_transform

    d = cfg.data
    common = dict(d.options)
    out = []
    for split, train_mode, extra in ((d.train_split, True, d.train_options),
                                     (d.eval_split, False, d.eval_options)):
        tf = build_transform(train_mode, img_size=d.img_size, recipe=d.recipe, mean=mean, std=std)
        out.append(build_dataset(d.name, d.root, split, transform=tf, **dict(common, **extra)))
    return out[0], out[1]


def _class_names(dataset: Dataset, what: str) -> list[str]:
    classes = getattr(dataset, "classes", None)
    if classes is None:
        raise ValueError(f"the {what} dataset ({type(dataset).__name__}) has no 'classes' "
                         "attribute (list of class names)")
    return [str(c) for c in classes]


def apply_label_noise(dataset: Dataset, ratio: float, seed: int) -> int:
    """Replace ``round(ratio·n)`` training labels by a different class (AGFN §4.3).

    Returns the number of labels changed.
    """
    from pyg_fer.data import add_label_noise

    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise ValueError(f"data.label_noise needs a dataset with 'targets'; "
                         f"{type(dataset).__name__} has none")
    num_classes = len(_class_names(dataset, "training"))
    noisy, changed = add_label_noise(targets, ratio, num_classes, seed)
    dataset.targets = noisy
    return int(torch.as_tensor(changed).sum().item())


# ----------------------------------------------------------------------------- evaluation


def _pool_features(feats: Tensor) -> Tensor:
    """One vector per image: node features ``[B, N, D]`` are averaged over nodes, feature maps
    ``[B, C, H, W]`` over space."""
    if feats.dim() == 3:
        return feats.mean(dim=1)
    if feats.dim() == 4:
        return feats.mean(dim=(2, 3))
    return feats.reshape(feats.shape[0], -1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Dataset | DataLoader,
    *,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    loss: str = "ce",
    label_smoothing: float = 0.0,
    amp: bool = False,
    channels_last: bool = False,
    return_features: bool = False,
    dist_info: D.DistInfo | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on a dataset (or loader): loss, confusion matrix and accuracies.

    In a distributed run each rank evaluates a disjoint shard and the confusion matrices and
    loss sums are summed over ranks, so every rank returns the metrics of the whole set.

    Returns:
        A dict with ``loss``, ``confusion_matrix`` (``[C, C]`` int64), ``num_samples``,
        ``overall_acc``, ``mean_class_acc``, ``per_class_acc``, ``support``; with
        ``return_features`` also ``features`` (pooled ``forward_features``), ``targets`` and
        ``preds`` (this rank's samples only).
    """
    info = dist_info or D.DistInfo()
    bare = ckpt.unwrap(model)
    if device is None:
        device = next(bare.parameters()).device
    device = torch.device(device)
    if class_names is None:
        class_names = getattr(data, "classes", None) or (getattr(bare, "cfg", {}) or {}).get(
            "class_names")
    if num_classes is None:
        num_classes = len(class_names) if class_names else (bare.cfg or {}).get("num_classes")
    if not num_classes:
        raise ValueError("evaluate() needs num_classes or class_names")
    if isinstance(data, DataLoader):
        loader = data
    else:
        loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers,
                            sampler=D.ShardSampler(len(data), info.rank, info.world_size))
    use_amp = amp and device.type == "cuda"
    was_training = bare.training
    bare.eval()
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    loss_sum = torch.zeros((), dtype=torch.float64)
    feats, tgts, preds = [], [], []
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        if channels_last and device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            if return_features:
                f = bare.forward_features(images)
                feats.append(_pool_features(f.float()).cpu())
            logits = bare(images)
        loss_sum += compute_loss(logits, targets, loss, label_smoothing).double().cpu() * len(
            images)
        pred = logits.argmax(dim=1).cpu()
        cm += confusion_matrix(pred, targets.cpu(), num_classes)
        if return_features:
            tgts.append(hard_targets(targets).cpu())
            preds.append(pred)
    bare.train(was_training)
    if info.enabled:
        # gloo and NCCL both reduce float64/int64; move to the process group's device.
        red_dev = device if device.type == "cuda" else torch.device("cpu")
        packed = torch.cat([cm.flatten().double(), loss_sum.reshape(1)]).to(red_dev)
        D.all_reduce_sum(packed, info)
        packed = packed.cpu()
        cm = packed[:-1].round().long().reshape(num_classes, num_classes)
        loss_sum = packed[-1]
    summary = summarize_confusion(cm, class_names if class_names else None)
    total = max(1, summary["num_samples"])
    out = {"loss": loss_sum.item() / total, "confusion_matrix": cm, **summary}
    if return_features:
        out["features"] = torch.cat(feats) if feats else torch.empty(0)
        out["targets"] = torch.cat(tgts) if tgts else torch.empty(0, dtype=torch.long)
        out["preds"] = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
    return out


# ----------------------------------------------------------------------------- training steps


def coordinate_descent_step(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    opt_net: torch.optim.Optimizer,
    opt_graph: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    graph_step: str = "fresh",
    scaler: torch.amp.GradScaler | None = None,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    grad_clip: float | None = None,
    dist_info: D.DistInfo | None = None,
    sample_average: str = "loss",
) -> tuple:
    """One AGFN coordinate-descent iteration (AGFN §3.3).

    1. Network step, Eq. 9–10: ``W ← W − γ1 ∇_W E`` from a forward/backward pass with the
       sampler's α, β held fixed (only ``opt_net`` steps).
    2. Graph step, Eq. 11: ``(α, β) ← (α, β) − γ2 ∇_{α,β} E`` with ``W`` held fixed. With
       ``graph_step='fresh'`` (default) the gradient comes from a new forward pass at the updated
       ``Ŵ`` with a newly sampled graph — Gauss–Seidel coordinate descent; the network
       parameters are frozen for it and the BatchNorm statistics it would update are restored.
       With ``'shared'`` it reuses the gradient of step 1 (one backward pass, half the cost).

    ``sample_average``: when the model draws ``S > 1`` graphs per forward, ``'loss'`` averages
    the ``S`` losses (Eq. 10: the gradient is the mean of the per-draw gradients) and
    ``'output'`` takes the loss of the averaged outputs.

    Returns:
        ``(logits, loss)`` of the network step's forward pass (detached; with ``S > 1`` draws
        the logits are averaged over the draws).
    """
    if sample_average not in SAMPLE_AVERAGES:
        raise ValueError(f"unknown sample_average '{sample_average}'; valid: "
                         f"{', '.join(SAMPLE_AVERAGES)}")
    forward = functools.partial(sampled_forward, sample_average=sample_average)
    bare = ckpt.unwrap(model)
    scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)
    net_params = [p for p in bare.network_parameters() if p.requires_grad]
    graph_params = [p for p in bare.graph_parameters() if p.requires_grad]
    opt_graph.zero_grad(set_to_none=True)
    logits, loss = _forward_backward_step(model, images, targets, opt_net, loss_fn, scaler,
                                          autocast, grad_clip, net_params, forward)
    if graph_step == "shared":
        scaler.step(opt_graph)
        scaler.update()
        return logits.detach(), loss.detach()
    if graph_step != "fresh":
        raise ValueError(f"unknown graph_step '{graph_step}'; valid: fresh, shared")
    scaler.update()
    opt_graph.zero_grad(set_to_none=True)
    with _frozen(net_params), _preserved_buffers(bare):
        with autocast():
            graph_loss = forward(bare, images, targets, loss_fn)[1]
        scaler.scale(graph_loss).backward()
    info = dist_info or D.DistInfo()
    if info.enabled:
        for p in graph_params:
            if p.grad is not None:
                D.all_reduce_sum(p.grad, info).div_(info.world_size)
    scaler.step(opt_graph)
    scaler.update()
    return logits.detach(), loss.detach()


SAMPLE_AVERAGES = ("loss", "output")


def _plain_forward(model, images, targets, loss_fn):
    logits = model(images)
    return logits, loss_fn(logits, targets)


def sampled_forward(model: nn.Module, images: Tensor, targets: Tensor,
                    loss_fn: Callable[[Tensor, Tensor], Tensor],
                    sample_average: str = "loss") -> tuple:
    """``(logits, loss)`` of one forward pass of a model that may draw several graphs.

    With ``sample_average='loss'`` and a model whose ``forward`` takes ``return_samples`` (the
    AGFN models: ``[S, B, C]``, one block per graph drawn), the loss is the mean of the ``S``
    per-draw losses (AGFN Eq. 10) and the logits the mean of the ``S`` logits; otherwise the
    loss of the model's plain output (which averages the ``S`` outputs).
    """
    if sample_average == "loss" and _takes_samples(model):
        stacked = model(images, return_samples=True)
        loss = torch.stack([loss_fn(out, targets) for out in stacked]).mean()
        return stacked.mean(0), loss
    return _plain_forward(model, images, targets, loss_fn)


def _takes_samples(model: nn.Module) -> bool:
    forward = getattr(ckpt.unwrap(model), "forward", None)
    try:
        return "return_samples" in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False


def _forward_backward_step(model, images, targets, opt, loss_fn, scaler, autocast, grad_clip,
                           params, forward=_plain_forward):
    """Zero ``opt``'s gradients, forward, scaled backward, optional clipping of ``params``,
    ``opt`` step; the scaler is not updated (the caller may step another optimiser first)."""
    opt.zero_grad(set_to_none=True)
    with autocast():
        logits, loss = forward(model, images, targets, loss_fn)
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(opt)
        _clip(params, grad_clip)
    scaler.step(opt)
    return logits, loss


def _standard_step(model, images, targets, opt, loss_fn, scaler, autocast, grad_clip, params,
                   forward=_plain_forward):
    logits, loss = _forward_backward_step(model, images, targets, opt, loss_fn, scaler, autocast,
                                          grad_clip, params, forward)
    scaler.update()
    return logits.detach(), loss.detach()


# ----------------------------------------------------------------------------- train()


def _run_dir(cfg: Config, resume: str | Path | bool | None) -> Path:
    if resume not in (None, False, True):
        return Path(resume)
    name = cfg.output.name or f"{cfg.model.name}_{cfg.data.name}"
    return Path(cfg.output.dir) / name


def train(
    config: ConfigLike = None,
    *,
    overrides: Sequence[str] = (),
    train_dataset: Dataset | None = None,
    eval_dataset: Dataset | None = None,
    resume: str | Path | bool | None = None,
    on_epoch_end: Callable[[int, nn.Module, dict[str, Any]], None] | None = None,
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

    Returns:
        A summary: ``run_dir``, ``best_epoch``, ``best`` (eval metrics of the best checkpoint),
        ``report`` (paths of the report files), ``train_time_s``. Only rank 0 writes files;
        every rank returns the same summary.
    """
    cfg = load_config(config, overrides)  # a validated copy, also of a Config
    t_start = time.perf_counter()
    pre_device = resolve_device(cfg.train.device)
    info = D.init_distributed(cfg.distributed.backend, pre_device.type)
    try:
        return _train(cfg, info, train_dataset, eval_dataset, resume, t_start, on_epoch_end)
    finally:
        D.cleanup(info)


def _train(cfg: Config, info: D.DistInfo, train_ds, eval_ds, resume, t_start,
           on_epoch_end) -> dict[str, Any]:
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
    resuming = resume not in (None, False)
    if info.is_main:
        _prepare_run_dir(run_dir, cfg, resuming)
    D.barrier(info)

    # ---- data
    mean, std = _imagenet_stats()
    mean = cfg.data.mean or mean
    std = cfg.data.std or std
    if train_ds is None or eval_ds is None:
        built_train, built_eval = build_datasets(cfg, mean, std)
        train_ds = train_ds if train_ds is not None else built_train
        eval_ds = eval_ds if eval_ds is not None else built_eval
    class_names = _class_names(train_ds, "training")
    eval_names = _class_names(eval_ds, "evaluation")
    if eval_names != class_names:
        raise ValueError(f"training classes {class_names} differ from evaluation classes "
                         f"{eval_names}")
    noisy = 0
    if cfg.data.label_noise > 0:
        noisy = apply_label_noise(train_ds, cfg.data.label_noise, cfg.data.label_noise_seed)

    # ---- model
    model = _build_model(cfg, class_names, mean, std)
    agfn_mode = cfg.agfn.enabled
    if agfn_mode and not _has_agfn(model):
        raise ValueError(f"agfn.enabled is true but model '{cfg.model.name}' has no "
                         "graph_parameters()/network_parameters()")
    if agfn_mode and cfg.agfn.pretrain_epochs > 0 and not callable(
            getattr(model, "set_agfn_enabled", None)):
        raise ValueError(f"agfn.pretrain_epochs > 0 needs model '{cfg.model.name}' to offer "
                         "set_agfn_enabled(bool)")
    if callable(getattr(model, "set_global_graph", None)):
        model.set_global_graph(cfg.agfn.global_graph and info.enabled)
    seed_everything(tc.seed + info.rank)  # rank-specific augmentation / dropout streams
    model.to(device)
    use_cuda = device.type == "cuda"
    channels_last = tc.channels_last and use_cuda
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if info.enabled and cfg.distributed.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    bare = model
    if info.enabled:
        model = DistributedDataParallel(
            model, device_ids=[device.index] if use_cuda else None,
            find_unused_parameters=agfn_mode,
        )

    # ---- optimisation
    o = cfg.optim
    if agfn_mode:
        net_params = [p for p in bare.network_parameters() if p.requires_grad]
        graph_params = [p for p in bare.graph_parameters() if p.requires_grad]
        _check_partition(bare, net_params, graph_params)
    else:
        net_params = [p for p in bare.parameters() if p.requires_grad]
        graph_params = []
    opt = build_optimizer(o.name, net_params, lr=o.lr, weight_decay=o.weight_decay,
                          momentum=o.momentum, nesterov=o.nesterov, betas=o.betas)
    opt_graph = None
    if agfn_mode:
        opt_graph = build_optimizer(cfg.agfn.graph_optimizer, graph_params,
                                    lr=cfg.agfn.graph_lr, momentum=0.0)
    per_rank_batch = tc.batch_size // info.world_size
    sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank,
                                 shuffle=True, seed=tc.seed, drop_last=False)
    drop_last = len(sampler) >= per_rank_batch
    loader = DataLoader(train_ds, batch_size=per_rank_batch, sampler=sampler,
                        num_workers=cfg.data.num_workers, drop_last=drop_last,
                        pin_memory=use_cuda, persistent_workers=cfg.data.num_workers > 0)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(f"the training set ({len(train_ds)} samples) gives no batch")
    s = cfg.schedule
    factor = LRFactor(s.name, steps_per_epoch * tc.epochs,
                      warmup_steps=round(s.warmup_epochs * steps_per_epoch),
                      min_ratio=s.min_lr / o.lr, step_size=s.step_epochs * steps_per_epoch,
                      gamma=s.gamma)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    use_amp = tc.amp and use_cuda
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    loss_kind = cfg.agfn.loss if agfn_mode else "ce"

    def loss_fn(logits: Tensor, targets: Tensor) -> Tensor:
        return compute_loss(logits, targets, loss_kind, tc.label_smoothing)

    def autocast():
        return torch.autocast(device.type, dtype=torch.float16, enabled=use_amp)

    # S > 1 graphs per step: mean of the S losses (Eq. 10) or loss of the mean output
    forward = functools.partial(sampled_forward, sample_average=cfg.agfn.sample_average)

    # ---- resume
    start_epoch, best_value, best_epoch = 1, -math.inf, 0
    if resuming:
        state = ckpt.load_train_state(run_dir / "train_state.pt")
        meta = ckpt.read_card(run_dir / "last.json")
        if meta.get("epoch") != state["epoch"]:
            raise ValueError(f"'{run_dir / 'last.json'}' is from epoch {meta.get('epoch')} but "
                             f"'{run_dir / 'train_state.pt'}' from epoch {state['epoch']}; the "
                             "run was interrupted while saving — delete the newer one")
        bare.load_state_dict(ckpt.read_weights(meta))
        opt.load_state_dict(state["optimizer"])
        if opt_graph is not None:
            opt_graph.load_state_dict(state["graph_optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch = state["epoch"] + 1
        best_value, best_epoch = state["best_value"], state["best_epoch"]
        rngs = state["rng"]
        if len(rngs) == info.world_size:
            ckpt.set_rng_state(rngs[info.rank])
        else:
            seed_everything(tc.seed + info.rank + 1000 * start_epoch)
        if info.is_main:
            _truncate_metrics(run_dir / "metrics.jsonl", state["epoch"])

    if info.is_main:
        print(f"[pyg-fer] run folder {run_dir} | model {cfg.model.name} "
              f"({sum(p.numel() for p in bare.parameters()) / 1e6:.2f} M params) | "
              f"{len(train_ds)} train / {len(eval_ds)} eval images, {len(class_names)} classes"
              f"{f', {noisy} noisy labels' if noisy else ''} | device {device}"
              f"{f' x{info.world_size}' if info.enabled else ''}", flush=True)

    # ---- epochs
    eval_kwargs = {
        "num_classes": len(class_names), "class_names": class_names, "device": device,
        "batch_size": tc.eval_batch_size or per_rank_batch, "num_workers": cfg.data.num_workers,
        "loss": loss_kind, "label_smoothing": tc.label_smoothing, "amp": use_amp,
        "channels_last": channels_last, "dist_info": info,
    }
    for epoch in range(start_epoch, tc.epochs + 1):
        sampler.set_epoch(epoch)
        agfn_on = agfn_mode and epoch > cfg.agfn.pretrain_epochs
        if agfn_mode and callable(getattr(bare, "set_agfn_enabled", None)):
            bare.set_agfn_enabled(agfn_on)
        model.train()
        stats = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
        t0 = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}/{tc.epochs}", leave=False, dynamic_ncols=True,
                   disable=not (tc.progress and info.is_main))
        for images, targets in bar:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = targets.to(device, non_blocking=True)
            if agfn_on:
                logits, loss = coordinate_descent_step(
                    model, images, targets, opt, opt_graph, loss_fn,
                    graph_step=cfg.agfn.graph_step, scaler=scaler, autocast=autocast,
                    grad_clip=tc.grad_clip, dist_info=info,
                    sample_average=cfg.agfn.sample_average)
            else:
                logits, loss = _standard_step(model, images, targets, opt, loss_fn, scaler,
                                              autocast, tc.grad_clip, net_params, forward)
            scheduler.step()
            n = len(images)
            correct = (logits.argmax(1) == hard_targets(targets)).sum().item()
            stats += torch.tensor([loss.item() * n, correct, n], dtype=torch.float64)
            if not bar.disable:
                elapsed = time.perf_counter() - t0
                bar.set_postfix(loss=f"{stats[0] / stats[2]:.4f}",
                                acc=f"{stats[1] / stats[2]:.3f}",
                                img_s=f"{stats[2] * info.world_size / elapsed:.1f}")
        bar.close()
        _reduce(stats, info, device)
        train_time = time.perf_counter() - t0
        record = {
            "epoch": epoch,
            "train_loss": stats[0].item() / stats[2].item(),
            "train_acc": stats[1].item() / stats[2].item(),
            "img_per_s": stats[2].item() / train_time,
            "lr": opt.param_groups[0]["lr"],
            "epoch_time_s": train_time,
        }
        if agfn_mode:
            record["agfn"] = agfn_on
        is_best = False
        if epoch % tc.eval_every == 0 or epoch == tc.epochs:
            ev = evaluate(model, eval_ds, **eval_kwargs)
            record.update(eval_loss=ev["loss"], eval_acc=ev["overall_acc"],
                          eval_mean_class_acc=ev["mean_class_acc"])
            value = ev[tc.best_metric]
            if value > best_value:
                best_value, best_epoch, is_best = value, epoch, True
        rngs = _gather_rng(info)
        if info.is_main:
            _save_epoch(run_dir, cfg, model, record, is_best, opt, opt_graph, scheduler, scaler,
                        rngs, best_value, best_epoch)
            msg = (f"[pyg-fer] epoch {epoch}/{tc.epochs} train loss {record['train_loss']:.4f} "
                   f"acc {record['train_acc']:.4f} ({record['img_per_s']:.1f} img/s)")
            if "eval_acc" in record:
                msg += (f" | eval acc {record['eval_acc']:.4f} mean class "
                        f"{record['eval_mean_class_acc']:.4f}{' *' if is_best else ''}")
            print(msg, flush=True)
        D.barrier(info)
        if on_epoch_end is not None:
            on_epoch_end(epoch, model, record)

    # ---- final report from the best checkpoint as saved on disk
    train_time = time.perf_counter() - t_start
    result: dict[str, Any] = {"run_dir": str(run_dir), "best_epoch": best_epoch,
                              "train_time_s": train_time}
    if info.is_main:
        best_model = ckpt.load_model(run_dir / "best.json", device=device)
        ev = evaluate(best_model, eval_ds, **dict(eval_kwargs, dist_info=None),
                      return_features=cfg.output.tsne)
        from pyg_fer.engine.report import write_report

        files = write_report(
            run_dir, ev, ev["confusion_matrix"], class_names,
            info={"model": cfg.model.name, "checkpoint": "best.json", "dataset": cfg.data.name,
                  "split": cfg.data.eval_split, "epoch": best_epoch,
                  "train_time_s": round(train_time, 1)},
            metrics_path=run_dir / "metrics.jsonl",
            tsne=(ev["features"], ev["targets"]) if cfg.output.tsne else None, seed=tc.seed)
        result["best"] = {k: ev[k] for k in ("overall_acc", "mean_class_acc", "per_class_acc",
                                             "num_samples", "loss")}
        result["report"] = files
    return D.broadcast_object(result, info)


def _reduce(stats: Tensor, info: D.DistInfo, device: torch.device) -> None:
    """Sum a CPU tensor over ranks (through the device for NCCL)."""
    if not info.enabled:
        return
    moved = stats.to(device) if device.type == "cuda" else stats
    D.all_reduce_sum(moved, info)
    if moved is not stats:
        stats.copy_(moved.cpu())


def _build_model(cfg: Config, class_names: list[str], mean, std) -> nn.Module:
    from pyg_fer.models import create_model

    kwargs = dict(cfg.model.kwargs)
    if "num_classes" in kwargs and kwargs["num_classes"] != len(class_names):
        raise ValueError(f"config key 'model.kwargs.num_classes' is {kwargs['num_classes']} but "
                         f"the data has {len(class_names)} classes")
    kwargs["num_classes"] = len(class_names)
    kwargs.setdefault("img_size", cfg.data.img_size)
    if kwargs["img_size"] != cfg.data.img_size:
        raise ValueError(f"config key 'model.kwargs.img_size' is {kwargs['img_size']} but "
                         f"'data.img_size' is {cfg.data.img_size}")
    model = create_model(cfg.model.name, **kwargs)
    model_cfg = dict(getattr(model, "cfg", None) or {})
    model_cfg.setdefault("name", cfg.model.name)
    rebuild = dict(model_cfg.get("kwargs") or kwargs)
    # the data's class names and normalisation, wherever the builder records them
    data_fields = {"class_names": list(class_names), "mean": list(mean), "std": list(std)}
    rebuild.update({k: v for k, v in data_fields.items() if k in rebuild})
    model_cfg.update(data_fields, kwargs=rebuild, num_classes=len(class_names),
                     input_size=[3, cfg.data.img_size, cfg.data.img_size])
    model.cfg = model_cfg
    return model


def _check_partition(model: nn.Module, net: Sequence[nn.Parameter],
                     graph: Sequence[nn.Parameter]) -> None:
    net_ids, graph_ids = {id(p) for p in net}, {id(p) for p in graph}
    if net_ids & graph_ids:
        raise ValueError("graph_parameters() and network_parameters() overlap")
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and id(p) not in net_ids | graph_ids]
    if missing:
        raise ValueError(f"parameters in neither graph_parameters() nor network_parameters(): "
                         f"{missing[:5]}")


def _gather_rng(info: D.DistInfo) -> list[dict[str, Any]]:
    state = ckpt.rng_state()
    if not info.enabled:
        return [state]
    out: list[Any] = [None] * info.world_size
    torch.distributed.all_gather_object(out, state)
    return out


def _prepare_run_dir(run_dir: Path, cfg: Config, resuming: bool) -> None:
    if resuming:
        if not (run_dir / "train_state.pt").is_file():
            raise FileNotFoundError(f"cannot resume: '{run_dir / 'train_state.pt'}' does not "
                                    "exist")
    elif (run_dir / "metrics.jsonl").exists():
        if not cfg.output.overwrite:
            raise ValueError(f"run folder '{run_dir}' already holds a run; resume it "
                             "(--resume), pick another output.name, or set output.overwrite=true")
        for name in ("metrics.jsonl", "train_state.pt", "best.json", "last.json"):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")


def _truncate_metrics(path: Path, last_epoch: int) -> None:
    """Drop records of epochs after ``last_epoch`` (written after the last saved state)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["epoch"] <= last_epoch]
    ckpt.atomic_write_text(path, "".join(line + "\n" for line in keep))


def _save_epoch(run_dir: Path, cfg: Config, model: nn.Module, record: dict[str, Any],
                is_best: bool, opt, opt_graph, scheduler, scaler, rngs, best_value,
                best_epoch) -> None:
    extra = {"epoch": record["epoch"], "config": cfg.to_dict()}
    ckpt.save_checkpoint(model, run_dir / "last", metrics=record, extra=extra)
    if is_best:
        ckpt.save_checkpoint(model, run_dir / "best", metrics=record, extra=extra)
    ckpt.save_train_state(run_dir / "train_state.pt", {
        "epoch": record["epoch"],
        "optimizer": opt.state_dict(),
        "graph_optimizer": opt_graph.state_dict() if opt_graph is not None else None,
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rngs,
        "best_value": best_value,
        "best_epoch": best_epoch,
    })
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")

