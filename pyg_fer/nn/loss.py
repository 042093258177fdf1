r"""Face2Nodes' label-smoothed cross-entropy (§3.4, Eq. 11-12): a documented name for
:func:`torch.nn.functional.cross_entropy` with ``label_smoothing``, which already implements it
for class indices and for soft targets (the module form is
:class:`torch.nn.CrossEntropyLoss` ``(label_smoothing=ξ)``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["label_smoothing_cross_entropy"]


def label_smoothing_cross_entropy(
    logits: Tensor, target: Tensor, smoothing: float = 0.1, reduction: str = "mean"
) -> Tensor:
    r"""Cross-entropy against label-smoothed targets, Face2Nodes Eq. (11)-(12):

    .. math::
        q(x_i) = (1 - \xi)\,\pi(x_i) + \frac{\xi}{C}, \qquad
        \mathcal{L}_{SCE} = -\frac{1}{N} \sum_{i=1}^{N} \sum_{c=1}^{C} q_c(x_i)
        \log \operatorname{softmax}(z_i)_c

    where :math:`\pi(x_i)` is the ground-truth distribution: one-hot for a class index, or the
    given probability vector for soft targets (e.g. FERPlus's vote distribution). This is
    exactly ``F.cross_entropy(logits, target, label_smoothing=smoothing)``, which validates
    its inputs with torch's own errors.

    Args:
        logits (Tensor): :math:`(N, C)` unnormalised scores.
        target (Tensor): :math:`(N,)` integer class indices, or :math:`(N, C)` float soft
            targets (non-negative, rows summing to one).
        smoothing (float): :math:`\xi \in [0, 1]`. (default: :obj:`0.1`, the paper's value)
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. (default: ``'mean'``)
    """
    return F.cross_entropy(logits, target, label_smoothing=smoothing, reduction=reduction)
