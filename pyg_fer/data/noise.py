"""Symmetric label noise, as in AGFN's noisy-label experiments (§4.3, Table 2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def add_label_noise(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    ratio: float,
    num_classes: int,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Flip exactly :math:`\mathrm{round}(\text{ratio}\cdot n)` labels to a different class.

    The samples to corrupt are chosen uniformly without replacement; each chosen label
    :math:`y` becomes :math:`(y + o) \bmod C` with an offset :math:`o \sim \mathcal{U}\{1, \dots,
    C-1\}`, i.e. a class drawn uniformly among the :math:`C - 1` other classes (symmetric noise).
    The input is not modified.

    Args:
        labels: ``n`` integer labels in ``[0, num_classes)``.
        ratio (float): fraction of labels to change, in ``[0, 1]``.
        num_classes (int): number of classes :math:`C \ge 2`.
        seed (int): seed of the noise; the same seed gives the same result (default: ``0``).

    Returns:
        ``(noisy_labels, changed_mask)``: a LongTensor of shape ``[n]`` and a BoolTensor that is
        ``True`` exactly where the label was changed.

    Raises:
        ValueError: if ``ratio`` is outside ``[0, 1]``, ``num_classes < 2``, ``labels`` is not
            one-dimensional, or a label is not an integer or out of range.
    """
    ratio = float(ratio)
    if not 0.0 <= ratio <= 1.0:  # also rejects NaN
        raise ValueError(f"noise ratio must be in [0, 1], got {ratio}")
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes}")
    values = np.asarray(labels.tolist() if torch.is_tensor(labels) else labels)
    if values.ndim != 1:
        raise ValueError(f"labels must be one-dimensional (one class index per sample), got "
                         f"shape {tuple(values.shape)}")
    if values.dtype.kind == "f" and values.size:
        fractional = values[np.mod(values, 1) != 0]  # NaN and inf included
        if fractional.size:
            raise ValueError(f"labels must be integer class indices, got {fractional[0]}")
    elif values.dtype.kind not in "iu" and values.size:
        raise ValueError(f"labels must be integer class indices, got dtype {values.dtype}")
    y = torch.as_tensor(values.astype(np.int64), dtype=torch.long)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = int(y[(y < 0) | (y >= num_classes)][0])
        raise ValueError(f"label {bad} is outside [0, {num_classes})")
    n = y.numel()
    k = round(ratio * n)
    rng = np.random.default_rng(seed)
    idx = torch.as_tensor(rng.choice(n, size=k, replace=False), dtype=torch.long)
    offset = torch.as_tensor(rng.integers(1, num_classes, size=k), dtype=torch.long)
    y[idx] = (y[idx] + offset) % int(num_classes)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[idx] = True
    return y, mask
