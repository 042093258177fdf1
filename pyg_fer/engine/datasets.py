"""The recipe's datasets: ``cfg.data`` → a split with its transform, class names, label noise.

Training (:func:`build_datasets`) and ``pyg-fer eval`` (:func:`build_split`) build their data
here, so a split is built the same way wherever it is used.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from pyg_fer.constants import IMAGENET_MEAN, IMAGENET_STD
from pyg_fer.data import add_label_noise, build_dataset, build_transform
from pyg_fer.data.build import dataset_options, unknown_options
from pyg_fer.engine.config import Config


def normalization(cfg: Config) -> tuple[list[float], list[float]]:
    """``(data.mean, data.std)``, ImageNet's where the recipe leaves them unset."""
    return list(cfg.data.mean or IMAGENET_MEAN), list(cfg.data.std or IMAGENET_STD)


def build_split(cfg: Config, split: str, *, train: bool, mean: Sequence[float],
                std: Sequence[float], img_size: int | None = None) -> Dataset:
    """One split of ``cfg.data`` with the recipe's training or evaluation transform.

    Args:
        cfg: the recipe.
        split: the dataset split (``'train'``, ``'test'``, ...).
        train: the training transform, else the evaluation transform. The options (on top of
            ``data.options``) are ``data.train_options`` for training and for evaluating the
            training split (the images the model trained on, as ``pyg-fer eval --split
            train`` does), ``data.eval_options`` otherwise (also when the evaluation split is
            the training split's name).
        mean, std: normalisation of the transform.
        img_size: network input size (default: ``data.img_size``).
    """
    data = cfg.data
    transform = build_transform(train, img_size=img_size or data.img_size, recipe=data.recipe,
                                mean=mean, std=std)
    use_train = train or data.eval_split != split == data.train_split
    section = "train_options" if use_train else "eval_options"
    kwargs = dict(data.options, **getattr(data, section))
    unknown = unknown_options(data.name, kwargs)
    if unknown:  # named by its config key, before build_dataset would name the option alone
        key = unknown[0]
        where = section if key in getattr(data, section) else "options"
        raise ValueError(f"config key 'data.{where}.{key}': dataset '{data.name}' has no option "
                         f"'{key}'; valid options: {', '.join(dataset_options(data.name))}")
    return build_dataset(data.name, data.root, split, transform=transform, **kwargs)


def build_datasets(cfg: Config, mean: Sequence[float],
                   std: Sequence[float]) -> tuple[Dataset, Dataset]:
    """Training and evaluation datasets of ``cfg.data`` with the recipe's transforms.

    Warns when the two are the same images (an ImageFolder without split folders serves every
    split), since evaluation figures on them measure fitting, not generalisation.
    """
    train_ds = build_split(cfg, cfg.data.train_split, train=True, mean=mean, std=std)
    eval_ds = build_split(cfg, cfg.data.eval_split, train=False, mean=mean, std=std)
    source = getattr(train_ds, "source", None)
    if (source and source == getattr(eval_ds, "source", None) and len(train_ds)
            and list(getattr(train_ds, "names", [])) == list(getattr(eval_ds, "names", []))):
        warnings.warn(f"data: the evaluation split {cfg.data.eval_split!r} is the training "
                      f"split {cfg.data.train_split!r}'s images ({source}); its accuracy is not "
                      "a held-out figure", stacklevel=2)
    return train_ds, eval_ds


def class_names(dataset: Dataset, what: str) -> list[str]:
    """The ``classes`` of a dataset as strings; ``what`` names it in the error."""
    classes = getattr(dataset, "classes", None)
    if classes is None:
        raise ValueError(f"the {what} dataset ({type(dataset).__name__}) has no 'classes' "
                         "attribute (list of class names)")
    return [str(c) for c in classes]


def apply_label_noise(dataset: Dataset, ratio: float, seed: int) -> int:
    """Replace ``round(ratio·n)`` training labels by a different class (AGFN §4.3).

    The noise is drawn from the clean labels (``targets_original``, kept on the dataset the
    first time), so training twice on one dataset object does not add noise to noise.

    Returns the number of labels changed.
    """
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise ValueError(f"data.label_noise needs a dataset with 'targets'; "
                         f"{type(dataset).__name__} has none")
    if getattr(dataset, "targets_original", None) is None:
        dataset.targets_original = list(torch.as_tensor(targets).tolist())
    num_classes = len(class_names(dataset, "training"))
    noisy, changed = add_label_noise(dataset.targets_original, ratio, num_classes, seed)
    dataset.targets = noisy
    return int(torch.as_tensor(changed).sum().item())
