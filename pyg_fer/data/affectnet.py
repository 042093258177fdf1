"""AffectNet (manually annotated part) from its CSV lists or its per-image ``.npy`` layout."""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from pyg_fer.data.base import FERDataset, load_rgb
from pyg_fer.data.classes import AFFECTNET7_CLASSES, AFFECTNET_CLASSES
from pyg_fer.data.samplers import class_balanced_sampler

AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]
AFFECTNET_CSV = {"train": "training.csv", "test": "validation.csv"}
AFFECTNET_NPY = {"train": "train_set", "test": "val_set"}
AFFECTNET_CODES = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
                   "None", "Uncertain", "No-Face"]


class AffectNet(FERDataset):
    """AffectNet expressions, 7- or 8-class protocol.

    CSV layout (``root/Manually_Annotated_file_lists/{training,validation}.csv``, header
    ``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,
    valence,arousal``; images under ``root/Manually_Annotated_Images/``) or the newer layout
    (``root/{train_set,val_set}/images/<id>.jpg`` + ``annotations/<id>_exp.npy``). The
    validation set is the test split. Codes 0..10 = Neutral, Happy, Sad, Surprise, Fear,
    Disgust, Anger, Contempt, None, Uncertain, No-Face; codes >= 8 are dropped, and contempt
    (7) too in the 7-class protocol. Class indices equal the codes. A CSV row repeated word for
    word is used once (counted in ``dropped``); an image listed twice with different values is
    an error naming both lines.

    Args:
        root (str): AffectNet folder.
        split (str): ``'train'`` or ``'test'`` (the official validation set).
        transform (callable, optional): applied to the RGB PIL image.
        num_classes (int): 7 or 8 (default: ``7``).
        crop_face (bool): CSV layout: crop the face box ``face_x, face_y, face_width,
            face_height``, clamped to the image (default: ``False``).
        layout (str): ``'auto'``, ``'csv'`` or ``'npy'`` (default: ``'auto'``).
        subset (str, optional): a list file restricting the split to the names it lists.
        skip_corrupt (bool): drop unreadable images (counted, reported once) instead of raising.

    Raises:
        FileNotFoundError: missing root, list, folder, annotation or image (named).
        ValueError: wrong header, malformed row, code outside 0..10, an image listed twice
            with different values (file and lines named).
    """

    def __init__(self, root: str, split: str = "train", transform: Callable | None = None,
                 num_classes: int = 7, crop_face: bool = False, layout: str = "auto",
                 subset: str | None = None, skip_corrupt: bool = False) -> None:
        if split not in AFFECTNET_CSV:
            raise ValueError(f"AffectNet split must be 'train' or 'test' (the official validation "
                             f"set), got {split!r}")
        if num_classes not in (7, 8):
            raise ValueError(f"AffectNet num_classes must be 7 or 8, got {num_classes}")
        if layout not in ("auto", "csv", "npy"):
            raise ValueError(f"layout must be 'auto', 'csv' or 'npy', got {layout!r}")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"AffectNet root not found: {root}")
        lists = os.path.join(root, "Manually_Annotated_file_lists")
        if layout == "auto":
            has_npy = os.path.isdir(os.path.join(root, AFFECTNET_NPY[split]))
            layout = "npy" if (not os.path.isdir(lists) and has_npy) else "csv"
        self.root, self.split, self.layout, self.crop_face = root, split, layout, crop_face
        self._num_classes = num_classes
        self._paths: list[str] = []
        self._boxes: list[tuple[int, int, int, int] | None] = []
        self.dropped = Counter()
        names, targets = self._read_csv(lists) if layout == "csv" else self._read_npy()
        dropped = self.dropped
        classes = AFFECTNET_CLASSES if num_classes == 8 else AFFECTNET7_CLASSES
        super().__init__(classes, targets, names, transform,
                         source=f"AffectNet {split} ({layout}, {num_classes} classes)")
        self.dropped = dropped
        if subset is not None:
            self.apply_subset(subset)
        self._drop_unreadable(self._paths, skip_corrupt)

    def _keep(self, code: int, where: str) -> bool:
        if not 0 <= code <= 10:
            raise ValueError(f"{where}: expression code {code} outside 0..10")
        if code >= 8:
            key = f"code {code} ({AFFECTNET_CODES[code]})"
            self.dropped[key] += 1
            return False
        if code == 7 and self._num_classes == 7:
            self.dropped["contempt (7-class)"] += 1
            return False
        return True

    def _read_csv(self, lists: str) -> tuple[list[str], list[int]]:
        path = os.path.join(lists, AFFECTNET_CSV[self.split])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"AffectNet list not found: {path}")
        img_root = os.path.join(self.root, "Manually_Annotated_Images")
        if not os.path.isdir(img_root):
            raise FileNotFoundError(f"AffectNet image folder not found: {img_root}")
        names: list[str] = []
        targets: list[int] = []
        seen: dict[str, tuple[int, list[str]]] = {}  # image -> (first line, its fields)
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header] != AFFECTNET_HEADER:
                raise ValueError(f"{path}, line 1: expected header {','.join(AFFECTNET_HEADER)!r},"
                                 f" got {','.join(header or [])!r}")
            for lineno, row in enumerate(reader, 2):
                if not row:
                    continue
                where = f"{path}, line {lineno}"
                if len(row) != len(AFFECTNET_HEADER):
                    raise ValueError(f"{where}: expected {len(AFFECTNET_HEADER)} fields, got "
                                     f"{len(row)}")
                try:
                    code = int(row[6])
                    box = tuple(int(float(v)) for v in row[1:5])
                    float(row[7]), float(row[8])
                except ValueError:
                    raise ValueError(f"{where}: non-numeric face box, expression, valence or "
                                     f"arousal in {row[1:5] + row[6:]}") from None
                rel = row[0].strip()
                fields = [v.strip() for v in row]
                if rel in seen:
                    first, first_fields = seen[rel]
                    if fields != first_fields:
                        raise ValueError(f"{where}: {rel!r} already listed on line {first} with "
                                         f"other values ({','.join(first_fields[1:])} there, "
                                         f"{','.join(fields[1:])} here)")
                    self.dropped["repeated row"] += 1  # the same row twice: kept once
                    continue
                seen[rel] = (lineno, fields)
                if not self._keep(code, where):
                    continue
                if box[2] <= 0 or box[3] <= 0:
                    raise ValueError(f"{where}: face box {box} has no area")
                names.append(rel)
                targets.append(code)
                self._paths.append(os.path.join(img_root, rel))
                self._boxes.append(box)  # type: ignore[arg-type]
        return names, targets

    def _read_npy(self) -> tuple[list[str], list[int]]:
        base = os.path.join(self.root, AFFECTNET_NPY[self.split])
        img_dir, ann_dir = os.path.join(base, "images"), os.path.join(base, "annotations")
        for p in (base, img_dir, ann_dir):
            if not os.path.isdir(p):
                raise FileNotFoundError(f"AffectNet folder not found: {p}")
        names: list[str] = []
        targets: list[int] = []
        images = sorted(n for n in os.listdir(img_dir) if n.lower().endswith((".jpg", ".jpeg",
                                                                               ".png")))
        for name in images:
            stem = os.path.splitext(name)[0]
            ann = os.path.join(ann_dir, f"{stem}_exp.npy")
            if not os.path.isfile(ann):
                raise FileNotFoundError(f"AffectNet annotation not found: {ann} (for {name})")
            try:
                value = np.load(ann, allow_pickle=False)
                code_f = float(str(value.item()) if value.dtype.kind in "US" else value.item())
            except (ValueError, OSError) as exc:
                raise ValueError(f"{ann}: not a single expression code ({exc})") from None
            if not math.isfinite(code_f) or code_f != int(code_f):
                raise ValueError(f"{ann}: expression code {code_f} is not an integer")
            if not self._keep(int(code_f), ann):
                continue
            names.append(name)
            targets.append(int(code_f))
            self._paths.append(os.path.join(img_dir, name))
            self._boxes.append(None)
        return names, targets

    def _restrict(self, keep: Sequence[int]) -> None:
        super()._restrict(keep)
        self._paths = [self._paths[i] for i in keep]
        self._boxes = [self._boxes[i] for i in keep]

    def load_image(self, i: int) -> Image.Image:
        img = load_rgb(self._paths[i])
        box = self._boxes[i]
        if self.crop_face and box is not None:
            x, y, w, h = box
            # clamped to the image: PIL would pad the outside with black pixels
            left, top = max(x, 0), max(y, 0)
            right, bottom = min(x + w, img.width), min(y + h, img.height)
            if right <= left or bottom <= top:
                raise ValueError(f"{self._paths[i]}: face box (x={x}, y={y}, w={w}, h={h}) of "
                                 f"{self.names[i]!r} lies outside the {img.width}x{img.height} "
                                 f"image")
            img = img.crop((left, top, right, bottom))
        return img

    def balanced_sampler(self, num_samples: int | None = None, generator=None):
        """A class-balanced :class:`~torch.utils.data.WeightedRandomSampler` over this split."""
        return class_balanced_sampler(self.targets, num_samples=num_samples, generator=generator)
