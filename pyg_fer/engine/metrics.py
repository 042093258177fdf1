"""Classification metrics computed from a confusion matrix.

Mean class accuracy is taken from the confusion matrix of the whole evaluation set
(``mean_c C[c, c] / sum_j C[c, j]``), never averaged over mini-batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def hard_targets(targets: Tensor) -> Tensor:
    """Class indices from integer labels ``[B]`` or soft targets ``[B, C]`` (their argmax, the
    first class on a tie)."""
    if targets.dim() == 2:
        if targets.size(1) < 2:  # a column of labels would all become class 0
            raise ValueError(f"targets of shape {tuple(targets.shape)} are neither [B] labels "
                             f"nor [B, C] soft targets (C >= 2): flatten a column of labels")
        return targets.argmax(dim=1)
    if targets.dim() != 1:
        raise ValueError(f"targets must be [B] labels or [B, C] soft targets, got shape "
                         f"{tuple(targets.shape)}")
    return targets.long()


def confusion_matrix(preds: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """``C[i, j]`` = number of samples of true class ``i`` predicted as ``j`` (int64, on CPU).

    Args:
        preds: predicted class indices ``[N]``.
        targets: true class indices ``[N]`` (or soft targets ``[N, C]``).
        num_classes: C.
    """
    hard = hard_targets(targets)
    if targets.dim() == 2 and targets.size(1) != num_classes:
        raise ValueError(f"soft targets of shape {tuple(targets.shape)} for {num_classes} "
                         "classes")
    targets = hard
    preds = preds.long().reshape(-1).cpu()
    targets = targets.reshape(-1).cpu()
    if preds.shape != targets.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and targets {tuple(targets.shape)} differ")
    for name, t in (("preds", preds), ("targets", targets)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise ValueError(f"{name} hold class indices outside [0, {num_classes})")
    idx = targets * num_classes + preds
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def summarize_confusion(
    cm: Tensor, class_names: Sequence[str] | None = None
) -> dict[str, object]:
    """Overall accuracy, mean class accuracy and per-class accuracy of a confusion matrix.

    Classes without test samples get ``None`` as per-class accuracy and are left out of the mean.
    """
    cm = cm.to(torch.float64)
    num_classes = cm.shape[0]
    names: list[str] = list(class_names) if class_names is not None else [
        str(i) for i in range(num_classes)
    ]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a {num_classes}-class confusion matrix")
    total = cm.sum().item()
    support = cm.sum(dim=1)
    diag = cm.diagonal()
    per_class = {}
    accs = []
    for c, name in enumerate(names):
        if support[c] > 0:
            acc = (diag[c] / support[c]).item()
            per_class[name] = acc
            accs.append(acc)
        else:
            per_class[name] = None
    return {
        "num_samples": int(total),
        "overall_acc": diag.sum().item() / total if total else float("nan"),
        "mean_class_acc": sum(accs) / len(accs) if accs else float("nan"),
        "per_class_acc": per_class,
        "support": {name: int(support[c].item()) for c, name in enumerate(names)},
    }
