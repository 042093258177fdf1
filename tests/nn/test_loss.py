import math

import pytest
import torch
import torch.nn.functional as F

from pyg_fer.nn import label_smoothing_cross_entropy


def test_exact_value_on_tiny_case():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    target = torch.tensor([0])
    # q = (1 - 0.1) * onehot + 0.1 / 3 = [0.9333.., 0.0333.., 0.0333..]
    log_z = math.log(math.exp(2.0) + 2.0)
    expected = -(0.9 + 0.1 / 3) * (2.0 - log_z) - 2 * (0.1 / 3) * (0.0 - log_z)
    out = label_smoothing_cross_entropy(logits, target, smoothing=0.1)
    assert out.item() == pytest.approx(expected, rel=1e-6)
    # 0.1 is the default (Face2Nodes §4.2)
    assert label_smoothing_cross_entropy(logits, target).item() == pytest.approx(expected,
                                                                                  rel=1e-6)


def test_hard_targets_match_torch_and_onehot_soft_targets():
    logits = torch.randn(6, 7)
    target = torch.randint(0, 7, (6,))
    hard = label_smoothing_cross_entropy(logits, target, 0.1)
    assert torch.allclose(hard, F.cross_entropy(logits, target, label_smoothing=0.1))
    soft = label_smoothing_cross_entropy(logits, F.one_hot(target, 7).float(), 0.1)
    assert torch.allclose(hard, soft, atol=1e-6)


def test_soft_targets_eq12():
    logits = torch.randn(4, 3)
    pi = torch.softmax(torch.randn(4, 3), dim=1)
    q = 0.8 * pi + 0.2 / 3
    expected = -(q * F.log_softmax(logits, 1)).sum(1)
    out = label_smoothing_cross_entropy(logits, pi, 0.2, reduction="none")
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(label_smoothing_cross_entropy(logits, pi, 0.2, "sum"), expected.sum())
