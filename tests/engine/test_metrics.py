import pytest
import torch

from pyg_fer.engine.metrics import confusion_matrix, summarize_confusion
from pyg_fer.engine.steps import compute_loss


def test_confusion_matrix_exact():
    preds = torch.tensor([0, 1, 1, 2, 2, 2, 0])
    targets = torch.tensor([0, 1, 2, 2, 2, 0, 0])
    cm = confusion_matrix(preds, targets, 3)
    assert cm.tolist() == [[2, 0, 1], [0, 1, 0], [0, 1, 2]]
    assert cm.dtype == torch.int64


def test_soft_targets_use_argmax():
    soft = torch.tensor([[0.1, 0.9], [0.6, 0.4]])
    cm = confusion_matrix(torch.tensor([1, 1]), soft, 2)
    assert cm.tolist() == [[0, 1], [0, 1]]


def test_mean_class_accuracy_from_confusion_not_batches():
    # class 0: 9/10 right, class 1: 0/2 right → overall 9/12, mean class 0.45
    cm = torch.tensor([[9, 1], [2, 0]])
    s = summarize_confusion(cm, ["a", "b"])
    assert s["overall_acc"] == pytest.approx(0.75)
    assert s["mean_class_acc"] == pytest.approx(0.45)
    assert s["per_class_acc"] == {"a": pytest.approx(0.9), "b": 0.0}
    assert s["support"] == {"a": 10, "b": 2}
    assert s["num_samples"] == 12


def test_class_without_support_is_left_out():
    cm = torch.tensor([[3, 1, 0], [0, 0, 0], [0, 0, 2]])
    s = summarize_confusion(cm)
    assert s["per_class_acc"]["1"] is None
    assert s["mean_class_acc"] == pytest.approx((0.75 + 1.0) / 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)
    with pytest.raises(ValueError, match="differ"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)
    with pytest.raises(ValueError, match="2 class names"):
        summarize_confusion(torch.eye(3, dtype=torch.long), ["a", "b"])


def test_a_column_of_labels_is_not_read_as_soft_targets():
    # [N, 1] labels used to become class 0 for every sample (the argmax of one column)
    with pytest.raises(ValueError, match=r"targets of shape \(3, 1\).*flatten a column"):
        confusion_matrix(torch.tensor([0, 1, 2]), torch.tensor([[0], [1], [2]]), 3)
    with pytest.raises(ValueError, match=r"soft targets of shape \(2, 4\) for 3 classes"):
        confusion_matrix(torch.tensor([0, 1]), torch.rand(2, 4), 3)
    with pytest.raises(ValueError, match=r"targets of shape \(3, 1\) for logits of shape "
                                         r"\(3, 4\): expected \[3\] class indices or \[3, 4\]"):
        compute_loss(torch.randn(3, 4), torch.tensor([[0], [1], [2]]), "mse")
    with pytest.raises(ValueError, match="logits must have shape"):
        compute_loss(torch.randn(2, 3, 4), torch.tensor([0, 1]))
