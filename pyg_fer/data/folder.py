"""ImageFolder: any dataset laid out as ``root/<split>/<class>/<image>`` (or ``root/<class>/``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from PIL import Image

from pyg_fer.data.base import IMG_EXTENSIONS, FERDataset, load_rgb


SPLIT_FOLDER_NAMES = ("train", "training", "val", "valid", "validation", "test", "testing")


def _subfolders(folder: str) -> list[str]:
    """Visible sub-folders of ``folder``, sorted."""
    return sorted(d for d in os.listdir(folder)
                  if not d.startswith(".") and os.path.isdir(os.path.join(folder, d)))


def _image_files(folder: str) -> list[str]:
    """Every visible file under ``folder`` (nested folders included), in sorted path order.

    Raises:
        ValueError: naming the first file that is not an image.
    """
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            p = os.path.join(dirpath, f)
            if not f.lower().endswith(IMG_EXTENSIONS):
                raise ValueError(f"{p}: not an image file (extensions {IMG_EXTENSIONS})")
            out.append(p)
    return out


class ImageFolder(FERDataset):
    """Images in class sub-folders.

    ``root/<split>/<class>/*.jpg`` when ``root/<split>`` exists, else ``root/<class>/*.jpg``
    (every split is then the whole folder, as the engine warns when it trains and evaluates on
    it). A root with split folders (``train``, ``val``, ``test``...) but not the one asked for is
    an error, never read as classes named after splits. Images in nested folders of a class
    folder belong to that class (names like ``happy/session2/0001.png``). Classes are the
    sub-folder names in sorted order unless ``classes`` fixes the order (e.g.
    ``pyg_fer.data.class_order('rafdb')``); with ``classes`` given, an unexpected sub-folder is
    an error rather than silently ignored.

    Args:
        root (str): dataset folder.
        split (str, optional): sub-folder to read (``'train'``, ``'val'``, ``'test'``...).
        transform (callable, optional): applied to the RGB PIL image.
        classes (sequence of str, optional): class order.
        subset (str, optional): a list file restricting the dataset to the names it lists.
        skip_corrupt (bool): drop unreadable images (counted, reported once) instead of raising.

    A class listed in ``classes`` without a folder in this split has no samples here (a small
    validation split may lack one); it is an error only when the split has no class folders.

    Raises:
        FileNotFoundError: missing root or split folder, or a listed class's folder in a split
            that has no class folders at all (named).
        ValueError: no class folders, an unknown class folder, or a non-image file (named).
    """

    def __init__(self, root: str, split: str | None = None, transform: Callable | None = None,
                 classes: Sequence[str] | None = None, subset: str | None = None,
                 skip_corrupt: bool = False) -> None:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"ImageFolder root not found: {root}")
        base = root
        found = _subfolders(root)
        if split is not None and os.path.isdir(os.path.join(root, split)):
            base = os.path.join(root, split)
            found = _subfolders(base)
        elif split is not None:
            splits = [d for d in found if d.lower() in SPLIT_FOLDER_NAMES]
            if splits:
                raise FileNotFoundError(f"split folder not found: {os.path.join(root, split)} "
                                        f"({root} has split folder(s) {splits})")
        if classes is None:
            if not found:
                raise ValueError(f"no class sub-folders in {base}")
            classes = found
        else:
            classes = list(classes)
            extra = [d for d in found if d not in classes]
            if extra:
                raise ValueError(f"{base}: sub-folder(s) {extra} are not in classes {classes}")
        names, targets = [], []
        for k, c in enumerate(classes):
            d = os.path.join(base, c)
            if not os.path.isdir(d):
                if c in found or not found:
                    raise FileNotFoundError(f"class folder not found: {d}")
                continue  # a class with no folder simply has no samples in this split
            for p in _image_files(d):
                names.append(os.path.relpath(p, base).replace(os.sep, "/"))
                targets.append(k)
        self.base = base
        super().__init__(classes, targets, names, transform, source=f"ImageFolder {base}")
        if subset is not None:
            self.apply_subset(subset)
        self._drop_unreadable([os.path.join(base, n) for n in self.names], skip_corrupt)

    def load_image(self, i: int) -> Image.Image:
        return load_rgb(os.path.join(self.base, self.names[i]))
