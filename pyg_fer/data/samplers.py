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
        ValueError: if ``targets`` is empty or holds a negative label.
    """
    t = torch.as_tensor(list(targets) if not torch.is_tensor(targets) else targets,
                        dtype=torch.long).reshape(-1)
    if t.numel() == 0:
        raise ValueError("class_balanced_sampler needs at least one target")
    if int(t.min()) < 0:
        raise ValueError(f"targets must be non-negative class indices, got {int(t.min())}")
    counts = torch.bincount(t).double()
    weights = 1.0 / counts[t]
    return WeightedRandomSampler(weights, num_samples or t.numel(), replacement=True,
                                 generator=generator)
