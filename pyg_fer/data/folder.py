"""ImageFolder: any dataset laid out as ``root/<split>/<class>/<image>`` (or ``root/<class>/``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from PIL import Image

from pyg_fer.data.base import IMG_EXTENSIONS, FERDataset, load_rgb


class ImageFolder(FERDataset):
    """Images in class sub-folders.

    ``root/<split>/<class>/*.jpg`` when ``root/<split>`` exists, else ``root/<class>/*.jpg``.
    Classes are the sub-folder names in sorted order unless ``classes`` fixes the order (e.g.
    ``pyg_fer.data.class_order('rafdb')``); with ``classes`` given, an unexpected sub-folder is
    an error rather than silently ignored.

    Args:
        root (str): dataset folder.
        split (str, optional): sub-folder to read (``'train'``, ``'val'``, ``'test'``...).
        transform (callable, optional): applied to the RGB PIL image.
        classes (sequence of str, optional): class order.
        subset (str, optional): a list file restricting the dataset to the names it lists.
        skip_corrupt (bool): drop unreadable images (counted, reported once) instead of raising.

    Raises:
        FileNotFoundError: missing root or class folder (named).
        ValueError: no class folders, an unknown class folder, or a non-image file (named).
    """

    def __init__(self, root: str, split: str | None = None, transform: Callable | None = None,
                 classes: Sequence[str] | None = None, subset: str | None = None,
                 skip_corrupt: bool = False) -> None:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"ImageFolder root not found: {root}")
        base = root
        if split is not None and os.path.isdir(os.path.join(root, split)):
            base = os.path.join(root, split)
        found = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
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
            for f in sorted(os.listdir(d)):
                p = os.path.join(d, f)
                if not os.path.isfile(p) or f.startswith("."):
                    continue
                if not f.lower().endswith(IMG_EXTENSIONS):
                    raise ValueError(f"{p}: not an image file (extensions {IMG_EXTENSIONS})")
                names.append(os.path.join(c, f))
                targets.append(k)
        self.base = base
        super().__init__(classes, targets, names, transform, source=f"ImageFolder {base}")
        if subset is not None:
            self.apply_subset(subset)
        self._drop_unreadable([os.path.join(base, n) for n in self.names], skip_corrupt)

    def load_image(self, i: int) -> Image.Image:
        return load_rgb(os.path.join(self.base, self.names[i]))
