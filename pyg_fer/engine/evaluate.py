"""Evaluation: loss, confusion matrix and accuracies of a model on a dataset, on one process
or sharded over a distributed run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from pyg_fer.engine import distributed as D
from pyg_fer.engine.checkpoint import input_dtype, unwrap
from pyg_fer.engine.metrics import confusion_matrix, hard_targets, summarize_confusion
from pyg_fer.engine.steps import compute_loss


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
    amp_dtype: torch.dtype = torch.float16,
    channels_last: bool = False,
    return_features: bool = False,
    dist_info: D.DistInfo | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on a dataset (or loader): loss, confusion matrix and accuracies.

    In a distributed run each rank evaluates a disjoint shard and the confusion matrices and
    loss sums are summed over ranks, so every rank returns the metrics of the whole set.

    ``loss`` is the objective named by ``loss`` and ``label_smoothing`` (both returned with
    it): the trainer evaluates with the recipe's training loss, while a plain call gives
    cross-entropy without smoothing, so the two losses of one checkpoint differ.

    Returns:
        A dict with ``loss``, ``loss_kind``, ``label_smoothing``, ``confusion_matrix``
        (``[C, C]`` int64), ``num_samples``, ``overall_acc``, ``mean_class_acc``,
        ``per_class_acc``, ``support``; with ``return_features`` also ``features`` (pooled
        ``forward_features``), ``targets`` and ``preds`` (this rank's samples only).

    Raises:
        ValueError: the dataset's ``classes`` differ from the model's ``class_names``, the
            model's outputs are not ``num_classes`` wide, the set is empty, or the model's
            outputs are not finite (a diverged model: no accuracy is computed from them).
    """
    info = dist_info or D.DistInfo()
    bare = unwrap(model)
    if device is None:
        device = next(bare.parameters()).device
    device = torch.device(device)
    data_names = getattr(data.dataset if isinstance(data, DataLoader) else data, "classes", None)
    model_cfg = getattr(bare, "cfg", None) or {}
    model_names = model_cfg.get("class_names")
    if data_names and model_names and list(data_names) != list(model_names):
        raise ValueError(f"the dataset's classes {list(data_names)} differ from the model's "
                         f"class_names {list(model_names)}")
    if class_names is None:
        class_names = data_names or model_names
    if num_classes is None:
        num_classes = len(class_names) if class_names else model_cfg.get("num_classes")
    if not num_classes:
        raise ValueError("evaluate() needs num_classes or class_names")
    if isinstance(data, DataLoader):
        if info.enabled and not isinstance(data.sampler, D.ShardSampler):
            raise ValueError(
                "evaluate() sums the ranks' counts in a distributed run: pass the Dataset (it "
                "is sharded here) or a DataLoader whose sampler is a ShardSampler, not a loader "
                "every rank reads whole")
        loader = data
    else:
        loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers,
                            sampler=D.ShardSampler(len(data), info.rank, info.world_size))
    use_amp = amp and device.type == "cuda"
    dtype = input_dtype(bare)
    was_training = bare.training
    bare.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    loss_sum = torch.zeros((), dtype=torch.float64)
    # samples with a NaN or inf output, counted on the device: read back once, after the loop
    nonfinite = torch.zeros((), dtype=torch.int64, device=device)
    feats, tgts, preds = [], [], []
    for images, targets in loader:
        images = images.to(device, dtype if images.is_floating_point() else None,
                           non_blocking=True)
        if channels_last and device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            if return_features:
                features = bare.forward_features(images)
                feats.append(_pool_features(features.float()).cpu())
            logits = bare(images)
        if logits.dim() != 2 or logits.shape[1] != num_classes:
            raise ValueError(f"the model's outputs have shape {tuple(logits.shape)}, not "
                             f"[batch, {num_classes}] for the {num_classes} classes evaluated")
        nonfinite += (~torch.isfinite(logits)).any(dim=1).sum()
        loss_sum += compute_loss(logits, targets, loss, label_smoothing).double().cpu() * len(
            images)
        pred = logits.argmax(dim=1).cpu()
        confusion += confusion_matrix(pred, targets.cpu(), num_classes)
        if return_features:
            tgts.append(hard_targets(targets).cpu())
            preds.append(pred)
    bare.train(was_training)
    nonfinite = nonfinite.double().cpu()
    if info.enabled:
        # gloo and NCCL both reduce float64/int64; move to the process group's device.
        red_dev = device if device.type == "cuda" else torch.device("cpu")
        packed = torch.cat([confusion.flatten().double(), loss_sum.reshape(1),
                            nonfinite.reshape(1)]).to(red_dev)
        D.all_reduce_sum(packed, info)
        packed = packed.cpu()
        confusion = packed[:-2].round().long().reshape(num_classes, num_classes)
        loss_sum, nonfinite = packed[-2], packed[-1]
    summary = summarize_confusion(confusion, class_names if class_names else None)
    total = summary["num_samples"]
    if total == 0:
        raise ValueError("evaluate(): the evaluation set is empty")
    if nonfinite > 0:
        raise ValueError(f"the model's outputs are not finite (NaN or inf) for "
                         f"{int(nonfinite)} of {total} samples: a diverged model or bad input, "
                         "from which no accuracy is computed")
    out = {"loss": loss_sum.item() / total, "loss_kind": loss,
           "label_smoothing": float(label_smoothing), "confusion_matrix": confusion, **summary}
    if return_features:
        out["features"] = torch.cat(feats) if feats else torch.empty(0)
        out["targets"] = torch.cat(tgts) if tgts else torch.empty(0, dtype=torch.long)
        out["preds"] = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
    return out
