"""Optimisers and the per-iteration learning-rate factor of the recipes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn


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
