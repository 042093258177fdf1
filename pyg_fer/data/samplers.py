"""Samplers for imbalanced FER data (AffectNet's class-balanced protocol)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import WeightedRandomSampler


def class_balanced_sampler(targets: Sequence[int] | torch.Tensor, num_samples: int | None = None,
                           generator: torch.Generator | None = None) -> WeightedRandomSampler:
    r"""Sample with replacement so every class is drawn equally often in expectation.

    Sample :math:`i` of class :math:`y_i` has weight :math:`1 / n_{y_i}`, where :math:`n_c` is
    the number of samples of class :math:`c`.

    Args:
        targets: integer class per sample.
        num_samples (int, optional): draws per epoch (default: ``len(targets)``).
        generator (torch.Generator, optional): for reproducible draws.

    Raises:
        ValueError: if ``targets`` is empty, not one integer label per sample (soft ``[N, C]``
            targets: pass their ``argmax(1)``), holds a negative label, or ``num_samples < 1``.
    """
    raw = torch.as_tensor(list(targets) if not torch.is_tensor(targets) else targets)
    if raw.dim() != 1:
        raise ValueError(f"targets must be one integer class per sample, shape [N]; got shape "
                         f"{tuple(raw.shape)} (soft targets: pass targets.argmax(1))")
    if raw.dtype.is_floating_point and not bool((raw == raw.round()).all()):
        raise ValueError("targets must be integer class indices, got fractional values")
    t = raw.long()
    if num_samples is not None and num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if t.numel() == 0:
        raise ValueError("class_balanced_sampler needs at least one target")
    if int(t.min()) < 0:
        raise ValueError(f"targets must be non-negative class indices, got {int(t.min())}")
    counts = torch.bincount(t).double()
    weights = 1.0 / counts[t]
    return WeightedRandomSampler(weights, t.numel() if num_samples is None else num_samples,
                                 replacement=True,
                                 generator=generator)
