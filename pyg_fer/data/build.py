"""``build_dataset``: one entry point for the engine and the command line."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from pyg_fer.data.affectnet import AffectNet
from pyg_fer.data.base import FERDataset
from pyg_fer.data.ferplus import FERPlus
from pyg_fer.data.folder import ImageFolder
from pyg_fer.data.rafdb import RAFDB
from pyg_fer.data.synthetic import SyntheticFER

DATASETS: dict[str, type[FERDataset]] = {
    "synthetic": SyntheticFER,
    "rafdb": RAFDB,
    "ferplus": FERPlus,
    "affectnet": AffectNet,
    "imagefolder": ImageFolder,
}

SPLITS: dict[str, tuple[str, ...]] = {
    "synthetic": ("train", "test", "pretrain"),
    "rafdb": ("train", "test"),
    "ferplus": ("train", "val", "test"),
    "affectnet": ("train", "test"),
    "imagefolder": ("train", "val", "test"),
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`build_dataset`."""
    return sorted(DATASETS)


def dataset_options(name: str) -> list[str]:
    """The ``**options`` :func:`build_dataset` passes to dataset ``name``'s class (its keyword
    arguments beyond ``root``, ``split`` and ``transform``)."""
    params = inspect.signature(DATASETS[name.lower()].__init__).parameters
    return [p for p in params if p not in ("self", "root", "split", "transform")]


def unknown_options(name: str, options: Iterable[str]) -> list[str]:
    """The names among ``options`` that dataset ``name`` does not take."""
    valid = dataset_options(name)
    return [key for key in options if key not in valid]


def build_dataset(name: str, root: str | None = None, split: str = "train",
                  transform: Callable | None = None, **options: Any) -> FERDataset:
    """Build a dataset by name.

    Args:
        name (str): ``'synthetic'``, ``'rafdb'``, ``'ferplus'``, ``'affectnet'`` or
            ``'imagefolder'``.
        root (str, optional): the folder the dataset's archive unpacks to (ignored by
            ``'synthetic'``; required by the others).
        split (str): ``'train'`` or ``'test'``, plus ``'val'`` for FERPlus (PublicTest) and
            ImageFolder and ``'pretrain'`` (a third, disjoint pool of identities) for
            synthetic. AffectNet's official validation set is its ``'test'``.
        transform (callable, optional): applied to each RGB PIL image.
        **options: passed to the dataset class (e.g. ``label_mode='probability'`` for FERPlus,
            ``num_classes=8`` for AffectNet, ``subset='occlusion_list.txt'``,
            ``skip_corrupt=True``, ``num_samples=2000``, ``start=10000`` or ``target='identity'``
            for synthetic).

    Returns:
        A :class:`~pyg_fer.data.base.FERDataset`: ``ds[i] = (image, target)``, with ``classes``
        and settable ``targets``. Defaults: FERPlus majority labels with 8 classes, AffectNet
        7 classes, synthetic RAF-DB order.

    Raises:
        ValueError: unknown name, unsupported split, an option the dataset does not take
            (named, with the valid ones), or missing ``root``.
        FileNotFoundError: as raised by the dataset for missing files.
    """
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {list_datasets()}")
    if split not in SPLITS[key]:
        extra = " (its official validation set is 'test')" if key == "affectnet" else ""
        raise ValueError(f"dataset {name!r} has no split {split!r}; expected one of "
                         f"{list(SPLITS[key])}{extra}")
    unknown = unknown_options(key, options)
    if unknown:
        raise ValueError(f"dataset {name!r} has no option {unknown[0]!r}; valid options: "
                         f"{', '.join(dataset_options(key))}")
    if key == "synthetic":
        return SyntheticFER(split=split, transform=transform, **options)
    if root is None:
        raise ValueError(f"dataset {name!r} needs a root folder")
    return DATASETS[key](root, split=split, transform=transform, **options)
