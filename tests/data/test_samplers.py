"""class_balanced_sampler: one integer label per sample, weights 1 / n_class."""

import pytest
import torch

from pyg_fer.data import class_balanced_sampler


def test_weights_are_one_over_the_class_count():
    s = class_balanced_sampler([0, 0, 0, 2], num_samples=5)
    assert s.weights.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0]) and s.num_samples == 5
    assert class_balanced_sampler(torch.tensor([1.0, 0.0])).num_samples == 2  # whole floats


@pytest.mark.parametrize("targets, kwargs, match", [
    (torch.tensor([[0.7, 0.3], [0.2, 0.8], [1.0, 0.0]]), {}, r"shape \[N\]; got shape \(3, 2\)"),
    ([0.5, 1.7], {}, "fractional"),
    ([0, 1], {"num_samples": 0}, "num_samples must be >= 1"),
    ([], {}, "at least one target"),
    ([0, -1], {}, "non-negative"),
])
def test_bad_targets_are_refused(targets, kwargs, match):
    with pytest.raises(ValueError, match=match):
        class_balanced_sampler(targets, **kwargs)
