"""The training objective and one optimisation step (forward, scaled backward, clip, step)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyg_fer.engine.checkpoint import unwrap
from pyg_fer.nn.loss import label_smoothing_cross_entropy

LossFn = Callable[[Tensor, Tensor], Tensor]

SAMPLE_AVERAGES = ("loss", "output")


def compute_loss(logits: Tensor, targets: Tensor, kind: str = "ce",
                 label_smoothing: float = 0.0) -> Tensor:
    """Training objective.

    ``'ce'``: Face2Nodes Eq. 11–12, cross-entropy against ``q = (1 − ξ)·π + ξ/C`` (``targets``
    may be class indices ``[B]`` or probability vectors ``[B, C]``).
    ``'mse'``: AGFN Eq. 7, ``‖softmax(f(X̂)) − y‖²`` with ``y`` one-hot (or the soft target),
    averaged over the batch.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape [batch, classes], got {tuple(logits.shape)}")
    batch, num_classes = logits.shape
    if tuple(targets.shape) not in ((batch,), (batch, num_classes)):
        raise ValueError(f"targets of shape {tuple(targets.shape)} for logits of shape "
                         f"{tuple(logits.shape)}: expected [{batch}] class indices or "
                         f"[{batch}, {num_classes}] probabilities")
    logits = logits.float()
    if kind == "ce":
        return label_smoothing_cross_entropy(logits, targets, label_smoothing)
    if kind == "mse":
        if targets.dim() == 1:
            targets = F.one_hot(targets.long(), logits.shape[1]).to(logits.dtype)
        return (logits.softmax(dim=1) - targets).pow(2).sum(dim=1).mean()
    raise ValueError(f"unknown loss '{kind}'; valid: ce, mse")


def check_sample_average(sample_average: str) -> None:
    """Raise :class:`ValueError` unless ``sample_average`` is one of :data:`SAMPLE_AVERAGES`."""
    if sample_average not in SAMPLE_AVERAGES:
        raise ValueError(f"unknown sample_average '{sample_average}'; valid: "
                         f"{', '.join(SAMPLE_AVERAGES)}")


def plain_forward(model: nn.Module, images: Tensor, targets: Tensor,
                  loss_fn: LossFn) -> tuple[Tensor, Tensor]:
    """``(logits, loss)`` of one forward pass."""
    logits = model(images)
    return logits, loss_fn(logits, targets)


def sampled_forward(model: nn.Module, images: Tensor, targets: Tensor, loss_fn: LossFn,
                    sample_average: str = "loss") -> tuple[Tensor, Tensor]:
    """``(logits, loss)`` of one forward pass of a model that may draw several graphs.

    With ``sample_average='loss'`` and a model whose ``forward`` takes ``return_samples`` (the
    AGFN models: ``[S, B, C]``, one block per graph drawn), the loss is the mean of the ``S``
    per-draw losses (AGFN Eq. 10) and the logits the mean of the ``S`` logits; otherwise the
    loss of the model's plain output (which averages the ``S`` outputs).
    """
    check_sample_average(sample_average)
    if sample_average == "loss" and _takes_samples(model):
        stacked = model(images, return_samples=True)
        loss = torch.stack([loss_fn(out, targets) for out in stacked]).mean()
        return stacked.mean(0), loss
    return plain_forward(model, images, targets, loss_fn)


def _takes_samples(model: nn.Module) -> bool:
    forward = getattr(unwrap(model), "forward", None)
    try:
        return "return_samples" in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False


def forward_backward_step(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    opt: torch.optim.Optimizer,
    loss_fn: LossFn,
    scaler: torch.amp.GradScaler,
    autocast: Callable[[], Any],
    grad_clip: float | None,
    params: Sequence[nn.Parameter],
    forward: Callable[..., tuple[Tensor, Tensor]] = plain_forward,
) -> tuple[Tensor, Tensor]:
    """Zero ``opt``'s gradients, ``forward(model, images, targets, loss_fn)``, scaled backward,
    optional clipping of ``params``, ``opt`` step; the scaler is not updated (the caller may
    step another optimiser first)."""
    opt.zero_grad(set_to_none=True)
    with autocast():
        logits, loss = forward(model, images, targets, loss_fn)
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(opt)
    return logits, loss


def standard_step(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    opt: torch.optim.Optimizer,
    loss_fn: LossFn,
    scaler: torch.amp.GradScaler,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    grad_clip: float | None = None,
    params: Sequence[nn.Parameter] = (),
    forward: Callable[..., tuple[Tensor, Tensor]] = plain_forward,
) -> tuple[Tensor, Tensor]:
    """One step of every parameter in ``opt``; returns the detached ``(logits, loss)``.

    ``forward`` is :func:`plain_forward` or a :func:`sampled_forward` partial."""
    logits, loss = forward_backward_step(model, images, targets, opt, loss_fn, scaler, autocast,
                                         grad_clip, params, forward)
    scaler.update()
    return logits.detach(), loss.detach()
