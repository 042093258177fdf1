"""RAF-DB (basic emotions) read from its distributed folder layout."""

from __future__ import annotations

import os
from collections.abc import Callable

from PIL import Image

from pyg_fer.data.base import FERDataset, claim_name, load_rgb
from pyg_fer.data.classes import RAFDB_CLASSES

RAFDB_LABEL_FILE = os.path.join("EmoLabel", "list_patition_label.txt")


class RAFDB(FERDataset):
    """RAF-DB basic expression set.

    Layout under ``root``::

        EmoLabel/list_patition_label.txt   "train_00001.jpg 5" (labels 1..7)
        Image/aligned/train_00001_aligned.jpg
        Image/original/train_00001.jpg

    Labels 1..7 = Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral map to class
    indices 0..6 (:data:`~pyg_fer.data.RAFDB_CLASSES`). The split is the name prefix
    (``train_``/``test_``).

    Args:
        root (str): folder the RAF-DB archive unpacks to.
        split (str): ``'train'`` or ``'test'``.
        transform (callable, optional): applied to the RGB PIL image.
        label_file (str, optional): an alternative label list in the same format, e.g. a
            noisy-label list ``noise01.txt``; relative paths are taken from ``root`` (default:
            ``EmoLabel/list_patition_label.txt``).
        image_dir (str): ``'aligned'`` or ``'original'`` (default: ``'aligned'``).
        subset (str, optional): a list file restricting the split to the names it lists.
        skip_corrupt (bool): drop unreadable images (counted, reported once) instead of raising
            (default: ``False``).

    Raises:
        FileNotFoundError: missing root, label file or image (named).
        ValueError: malformed line or label outside 1..7 (file and line named).
    """

    def __init__(self, root: str, split: str = "train", transform: Callable | None = None,
                 label_file: str | None = None, image_dir: str = "aligned",
                 subset: str | None = None, skip_corrupt: bool = False) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"RAF-DB split must be 'train' or 'test', got {split!r}")
        if image_dir not in ("aligned", "original"):
            raise ValueError(f"image_dir must be 'aligned' or 'original', got {image_dir!r}")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"RAF-DB root not found: {root}")
        label_path = label_file or RAFDB_LABEL_FILE
        if not os.path.isabs(label_path):
            label_path = os.path.join(root, label_path)
        if not os.path.isfile(label_path):
            raise FileNotFoundError(f"RAF-DB label file not found: {label_path}")
        names, targets, seen = [], [], {}
        with open(label_path, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2 or not parts[1].lstrip("-").isdecimal() \
                        or not parts[1].isascii():
                    raise ValueError(f"{label_path}, line {lineno}: expected '<name>.jpg <label>', "
                                     f"got {line.rstrip()!r}")
                name, lab = parts[0], int(parts[1])
                if not 1 <= lab <= 7:
                    raise ValueError(f"{label_path}, line {lineno}: label {lab} outside 1..7")
                if not (name.startswith(("train_", "test_"))):
                    raise ValueError(f"{label_path}, line {lineno}: name {name!r} has no "
                                     f"'train_'/'test_' prefix")
                claim_name(seen, name, label_path, lineno)
                if name.startswith(split + "_"):
                    names.append(name)
                    targets.append(lab - 1)
        self.root, self.split, self.image_dir = root, split, image_dir
        self.label_file = label_path
        super().__init__(RAFDB_CLASSES, targets, names, transform,
                         source=f"RAF-DB {split} ({os.path.basename(label_path)})")
        if subset is not None:
            self.apply_subset(subset)
        self._drop_unreadable([self.image_path(i) for i in range(len(self))], skip_corrupt)

    def image_path(self, i: int) -> str:
        stem, ext = os.path.splitext(self.names[i])
        if self.image_dir == "aligned":
            return os.path.join(self.root, "Image", "aligned", f"{stem}_aligned{ext}")
        return os.path.join(self.root, "Image", "original", self.names[i])

    def load_image(self, i: int) -> Image.Image:
        return load_rgb(self.image_path(i))
