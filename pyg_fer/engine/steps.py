"""The training objective and one optimisation step (forward, scaled backward, clip, step)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyg_fer.nn.loss import label_smoothing_cross_entropy

LossFn = Callable[[Tensor, Tensor], Tensor]


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
        return label_smoothing_cross_entropy(logits, targets, label_smoothing)
    if kind == "mse":
        if targets.dim() == 1:
            targets = F.one_hot(targets.long(), logits.shape[1]).to(logits.dtype)
        return (logits.softmax(dim=1) - targets).pow(2).sum(dim=1).mean()
    raise ValueError(f"unknown loss '{kind}'; valid: ce, mse")


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
) -> tuple[Tensor, Tensor]:
    """Zero ``opt``'s gradients, forward, scaled backward, optional clipping of ``params``,
    ``opt`` step; the scaler is not updated (the caller may step another optimiser first)."""
    opt.zero_grad(set_to_none=True)
    with autocast():
        logits = model(images)
        loss = loss_fn(logits, targets)
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
) -> tuple[Tensor, Tensor]:
    """One step of every parameter in ``opt``; returns the detached ``(logits, loss)``."""
    logits, loss = forward_backward_step(model, images, targets, opt, loss_fn, scaler, autocast,
                                         grad_clip, params)
    scaler.update()
    return logits.detach(), loss.detach()
