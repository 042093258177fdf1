import numpy as np
import pytest
import torch

from pyg_fer.data import add_label_noise


@pytest.mark.parametrize("ratio, n, count", [
    (0.1, 1000, 100), (0.2, 1000, 200), (0.3, 7, 2), (0.0, 50, 0), (1.0, 40, 40),
    (0.29, 100, 29), (0.3, 5, 2), (0.19, 10, 2),  # rounded to the nearest count, not down
])
def test_exact_count_and_all_changed_labels_differ(ratio, n, count):
    labels = torch.arange(n) % 7
    noisy, mask = add_label_noise(labels, ratio, 7, seed=3)
    assert int(mask.sum()) == count
    assert (noisy[mask] != labels[mask]).all() and (noisy[~mask] == labels[~mask]).all()
    assert noisy.min() >= 0 and noisy.max() < 7 and noisy.dtype == torch.long


def test_reproducible_and_input_untouched():
    labels = np.array([0, 1, 2, 3, 4, 5, 6] * 30)
    before = labels.copy()
    a = add_label_noise(labels, 0.2, 7, seed=11)
    b = add_label_noise(list(labels), 0.2, 7, seed=11)
    c = add_label_noise(labels, 0.2, 7, seed=12)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert np.array_equal(labels, before)
    t = torch.tensor(before)
    add_label_noise(t, 0.5, 7)
    assert torch.equal(t, torch.tensor(before))


def test_new_labels_uniform_over_other_classes():
    labels = torch.zeros(30000, dtype=torch.long)
    noisy, _mask = add_label_noise(labels, 1.0, 4, seed=0)
    counts = torch.bincount(noisy, minlength=4)
    assert counts[0] == 0 and ((counts[1:].float() / 30000 - 1 / 3).abs() < 0.015).all()


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio"):
        add_label_noise([0, 1], ratio, 7)


def test_bad_labels_and_classes():
    with pytest.raises(ValueError, match="label 7"):
        add_label_noise([0, 7], 0.5, 7)
    with pytest.raises(ValueError, match="num_classes"):
        add_label_noise([0, 0], 0.5, 1)


def test_labels_must_be_one_class_index_per_sample():
    # a one-hot [4, 3] matrix used to come back as 12 labels, fractions truncated silently
    with pytest.raises(ValueError, match=r"one-dimensional.*shape \(4, 3\)"):
        add_label_noise(torch.eye(3)[[0, 1, 2, 0]], 0.5, 3)
    with pytest.raises(ValueError, match="integer class indices, got 0.5"):
        add_label_noise([0.5, 1.7, 2.9], 0.5, 3)
    with pytest.raises(ValueError, match="integer class indices, got nan"):
        add_label_noise(np.array([0.0, np.nan]), 0.5, 3)
    with pytest.raises(ValueError, match="integer class indices, got dtype <U1"):
        add_label_noise(["a", "b"], 0.5, 3)
    noisy, changed = add_label_noise(torch.tensor([0.0, 1.0, 2.0, 0.0]), 0.5, 3, seed=0)
    assert noisy.dtype == torch.long and int(changed.sum()) == 2  # whole floats are indices
    assert torch.equal(noisy, add_label_noise([0, 1, 2, 0], 0.5, 3, seed=0)[0])
    assert add_label_noise([], 0.5, 3)[0].numel() == 0
