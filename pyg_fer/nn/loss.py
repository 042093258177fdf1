"""Cross-entropy with label smoothing (Face2Nodes §3.4, Eq. 11-12)."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["label_smoothing_cross_entropy", "LabelSmoothingCrossEntropy"]

_REDUCTIONS = ("mean", "sum", "none")


def label_smoothing_cross_entropy(
    logits: Tensor, target: Tensor, smoothing: float = 0.1, reduction: str = "mean"
) -> Tensor:
    r"""Cross-entropy against label-smoothed targets, Face2Nodes Eq. (11)-(12):

    .. math::
        q(x_i) = (1 - \xi)\,\pi(x_i) + \frac{\xi}{C}, \qquad
        \mathcal{L}_{SCE} = -\frac{1}{N} \sum_{i=1}^{N} \sum_{c=1}^{C} q_c(x_i)
        \log \operatorname{softmax}(z_i)_c

    where :math:`\pi(x_i)` is the ground-truth distribution: one-hot for a class index, or the
    given probability vector for soft targets (e.g. FERPlus's vote distribution).

    Args:
        logits (Tensor): :math:`(N, C)` unnormalised scores.
        target (Tensor): :math:`(N,)` integer class indices, or :math:`(N, C)` float soft
            targets (non-negative, rows summing to one).
        smoothing (float): :math:`\xi \in [0, 1]`. (default: :obj:`0.1`, the paper's value)
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. (default: ``'mean'``)
    """
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got '{reduction}'")
    if logits.dim() != 2:
        raise ValueError(f"expected logits of shape [N, C], got {tuple(logits.shape)}")
    n, c = logits.shape
    if target.dim() == 1 and not target.is_floating_point():
        if target.shape[0] != n:
            raise ValueError(
                f"target {tuple(target.shape)} does not match logits {tuple(logits.shape)}"
            )
        if n and (int(target.min()) < 0 or int(target.max()) >= c):
            raise ValueError(
                f"class index out of range [0, {c - 1}]: min {int(target.min())}, "
                f"max {int(target.max())}"
            )
        return F.cross_entropy(logits, target, label_smoothing=smoothing, reduction=reduction)
    if target.shape != logits.shape or not target.is_floating_point():
        raise ValueError(
            f"soft targets must be a float tensor of shape {tuple(logits.shape)}, got "
            f"{target.dtype} {tuple(target.shape)}"
        )
    if n:
        row_bad = (target < 0).any(dim=1) | ((target.sum(dim=1) - 1.0).abs() > 1e-4)
        if bool(row_bad.any()):
            bad = int(row_bad.nonzero()[0])
            raise ValueError(
                f"soft targets must be non-negative and sum to 1 per row; row {bad} is "
                f"{target[bad].tolist()}"
            )
    q = (1.0 - smoothing) * target.to(logits.dtype) + smoothing / c
    loss = -(q * F.log_softmax(logits, dim=1)).sum(dim=1)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class LabelSmoothingCrossEntropy(nn.Module):
    r"""Module form of :func:`label_smoothing_cross_entropy` (Face2Nodes Eq. 11-12).

    Args:
        smoothing (float): :math:`\xi`. (default: :obj:`0.1`)
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. (default: ``'mean'``)
    """

    def __init__(self, smoothing: float = 0.1, reduction: str = "mean") -> None:
        super().__init__()
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got '{reduction}'")
        self.smoothing = smoothing
        self.reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return label_smoothing_cross_entropy(logits, target, self.smoothing, self.reduction)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(smoothing={self.smoothing})"
