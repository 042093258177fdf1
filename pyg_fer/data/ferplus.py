"""FERPlus: FER2013 images with the ten-annotator FER+ votes."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from pyg_fer.data.base import FERDataset, claim_name, load_rgb
from pyg_fer.data.classes import FERPLUS7_CLASSES, FERPLUS_CLASSES

FER2013_HEADER = ["emotion", "pixels", "Usage"]
FERPLUS_HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger",
                  "disgust", "fear", "contempt", "unknown", "NF"]
FERPLUS_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
FERPLUS_FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
LABEL_MODES = ("majority", "probability")


def ferplus_votes_to_target(votes: Sequence[float], mode: str) -> list[float] | None:
    """Turn ten FER+ vote counts into an 8-class target, following the FERPlus reference code.

    Votes are ``neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown,
    NF``. Classes with a single vote are zeroed first (outlier removal). Then:

    * ``'majority'``: the top class wins if it holds more than half of the remaining votes;
    * ``'probability'``: the top classes are taken, largest first (ties together), until they
      hold 75 % of the votes or three classes are in; the sample is kept if they hold more than
      half of the votes, and the target is their normalised vote distribution.

    Returns:
        The normalised 8-class distribution, or ``None`` when the sample is dropped: no
        majority, or unknown/not-a-face wins.
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"unknown FERPlus label mode {mode!r}; expected one of {LABEL_MODES}")
    v = [0.0 if x < 1.0 + 1e-9 else float(x) for x in votes]
    total = sum(v)
    if total <= 0:
        return None
    out = [0.0] * len(v)
    if mode == "majority":
        m = max(v)
        if m <= 0.5 * total:
            return None
        out[v.index(m)] = m
    else:  # probability
        part, count, valid = 0.0, 0, True
        while part < 0.75 * total and count < 3 and valid:
            m = max(v)
            for i in range(len(v)):
                if v[i] == m:
                    out[i], v[i] = m, 0.0
                    part += m
                    count += 1
                    if i >= 8:  # unknown / NF reached: stop, and do not count it after others
                        valid = False
                        if sum(out) > m:
                            out[i] = 0.0
                            count -= 1
                        break
        if sum(out) <= 0.5 * total or count > 3:
            return None
    if int(np.argmax(out)) >= 8:
        return None
    emo = out[:8]
    s = sum(emo)
    return [x / s for x in emo]


class FERPlus(FERDataset):
    """FERPlus in either of its two on-disk forms.

    CSV form (``layout='csv'``)::

        root/fer2013.csv      emotion,pixels,Usage       (48x48 gray, 2304 integers per row)
        root/fer2013new.csv   Usage,Image name,neutral,...,contempt,unknown,NF

    The two files have the same rows in the same order; rows with an empty ``Image name`` are
    not faces and are dropped. Folder form (``layout='folders'``)::

        root/FER2013Train/ FER2013Valid/ FER2013Test/   PNGs + headerless label.csv
        label.csv rows: ``fer0000000.png,"(0, 0, 48, 48)",v1..v10`` (the box is optional)

    Splits: ``train``/``val``/``test`` = Training/PublicTest/PrivateTest. Classes (FERPlus
    order): neutral, happiness, surprise, sadness, anger, disgust, fear, contempt; with
    ``num_classes=7`` contempt is dropped: in both label modes a face whose top class is
    contempt is removed (so both modes keep the same faces); in probability mode the others
    also lose their contempt column and the rest is renormalised. Gray images are returned as
    RGB.

    Args:
        root (str): FERPlus folder.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        transform (callable, optional): applied to the RGB PIL image.
        label_mode (str): ``'majority'`` (int targets) or ``'probability'`` (float soft targets;
            ``targets`` then holds their argmax, and a sample whose ``targets`` entry is
            reassigned to another class, e.g. by label noise, gets that class one-hot)
            (default: ``'majority'``).
        num_classes (int): 8 or 7 (default: ``8``).
        layout (str): ``'auto'``, ``'csv'`` or ``'folders'`` (default: ``'auto'``: csv when
            ``fer2013new.csv`` exists).
        subset (str, optional): a list file restricting the split to the names it lists.
        skip_corrupt (bool): folder form only: drop unreadable PNGs instead of raising.

    Raises:
        FileNotFoundError: missing root, CSV, folder, ``label.csv`` or image (named).
        ValueError: wrong CSV header, malformed row, bad vote or pixel count (file and line).
    """

    def __init__(self, root: str, split: str = "train", transform: Callable | None = None,
                 label_mode: str = "majority", num_classes: int = 8, layout: str = "auto",
                 subset: str | None = None, skip_corrupt: bool = False) -> None:
        if split not in FERPLUS_USAGE:
            raise ValueError(f"FERPlus split must be one of {list(FERPLUS_USAGE)}, got {split!r}")
        if label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
        if num_classes not in (7, 8):
            raise ValueError(f"FERPlus num_classes must be 7 or 8, got {num_classes}")
        if layout not in ("auto", "csv", "folders"):
            raise ValueError(f"layout must be 'auto', 'csv' or 'folders', got {layout!r}")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"FERPlus root not found: {root}")
        if layout == "auto":
            layout = "csv" if os.path.exists(os.path.join(root, "fer2013new.csv")) else "folders"
        self.root, self.split, self.layout = root, split, layout
        self.label_mode, self._num_classes = label_mode, num_classes
        self._pixels: np.ndarray | None = None
        self._paths: list[str] = []
        self._soft: list[list[float]] = []
        self.dropped = Counter()
        if layout == "csv":
            names, targets = self._read_csv()
        else:
            names, targets = self._read_folder()
        classes = FERPLUS_CLASSES if num_classes == 8 else FERPLUS7_CLASSES
        dropped = self.dropped
        super().__init__(classes, targets, names, transform, source=f"FERPlus {split} ({layout}, "
                         f"{label_mode}, {num_classes} classes)")
        self.dropped = dropped
        self._rows = list(range(len(names)))
        if subset is not None:
            self.apply_subset(subset)
        if layout == "folders":
            self._drop_unreadable(self._paths, skip_corrupt)

    # --- parsing ------------------------------------------------------------------------------
    def _target_from_fields(self, fields: list[str], where: str) -> list[float] | None:
        """Parse the 10 vote counts of a label row and convert them to this dataset's target."""
        try:
            votes = [float(x) for x in fields]
        except ValueError as exc:
            raise ValueError(f"{where}: bad vote count ({exc})") from None
        return self._convert(votes, where)

    def _convert(self, votes: list[float], where: str) -> list[float] | None:
        for v in votes:
            if v < 0 or v != int(v):
                raise ValueError(f"{where}: vote counts must be non-negative integers, got {votes}")
        target = ferplus_votes_to_target(votes, self.label_mode)
        if target is None:
            self.dropped["no majority / unknown / not a face"] += 1
            return None
        if self._num_classes == 7:
            # A face whose top class is contempt is dropped in both modes, so that the 7-class
            # protocol keeps the same faces whatever the label mode (never relabelled as its
            # runner-up); probability targets of the others lose their contempt share.
            if int(np.argmax(target)) == 7:
                self.dropped["contempt (7-class)"] += 1
                return None
            s = sum(target[:7])
            target = [x / s for x in target[:7]]
        return target

    def _add(self, target: list[float], names: list[str], targets: list[int], name: str) -> None:
        names.append(name)
        targets.append(int(np.argmax(target)))
        self._soft.append(target)

    def _read_csv(self) -> tuple[list[str], list[int]]:
        old = os.path.join(self.root, "fer2013.csv")
        new = os.path.join(self.root, "fer2013new.csv")
        for p in (old, new):
            if not os.path.isfile(p):
                raise FileNotFoundError(f"FERPlus label file not found: {p}")
        usage = FERPLUS_USAGE[self.split]
        names: list[str] = []
        targets: list[int] = []
        pixels: list[np.ndarray] = []
        seen: dict[str, int] = {}
        with open(old, newline="", encoding="utf-8-sig") as fo, \
                open(new, newline="", encoding="utf-8-sig") as fn:
            ro, rn = csv.reader(fo), csv.reader(fn)
            ho, hn = next(ro, None), next(rn, None)
            if ho is None or [h.strip() for h in ho] != FER2013_HEADER:
                raise ValueError(f"{old}, line 1: expected header {','.join(FER2013_HEADER)!r}, "
                                 f"got {','.join(ho or [])!r}")
            if hn is None or [h.strip() for h in hn] != FERPLUS_HEADER:
                raise ValueError(f"{new}, line 1: expected header {','.join(FERPLUS_HEADER)!r}, "
                                 f"got {','.join(hn or [])!r}")
            lineno = 1
            while True:
                a, b = next(ro, None), next(rn, None)
                lineno += 1
                if a is None and b is None:
                    break
                if a is None or b is None:
                    short = old if a is None else new
                    raise ValueError(f"{short} ends at line {lineno - 1} but the other file has "
                                     f"more rows: fer2013.csv and fer2013new.csv must align")
                if len(a) != 3:
                    raise ValueError(f"{old}, line {lineno}: expected 3 fields, got {len(a)}")
                if len(b) != 12:
                    raise ValueError(f"{new}, line {lineno}: expected 12 fields, got {len(b)}")
                if a[2].strip() != b[0].strip():
                    raise ValueError(f"{new}, line {lineno}: Usage {b[0]!r} differs from "
                                     f"{a[2]!r} in {old}")
                if b[0].strip() not in FERPLUS_USAGE.values():
                    raise ValueError(f"{new}, line {lineno}: unknown Usage {b[0]!r}")
                name = b[1].strip()
                if name:
                    claim_name(seen, name, new, lineno)
                if b[0].strip() != usage:
                    continue
                if not name:
                    self.dropped["not a face (no image name)"] += 1
                    continue
                target = self._target_from_fields(b[2:], f"{new}, line {lineno}")
                if target is None:
                    continue
                pix = a[1].split()
                if len(pix) != 48 * 48:
                    raise ValueError(f"{old}, line {lineno}: expected 2304 pixels (48x48), got "
                                     f"{len(pix)}")
                try:
                    arr = np.array(pix, dtype=np.int64)
                except ValueError:
                    raise ValueError(f"{old}, line {lineno}: pixels must be integers") from None
                if arr.min() < 0 or arr.max() > 255:
                    raise ValueError(f"{old}, line {lineno}: pixel values must be in 0..255")
                pixels.append(arr.astype(np.uint8).reshape(48, 48))
                self._add(target, names, targets, name)
        self._pixels = np.stack(pixels) if pixels else np.zeros((0, 48, 48), np.uint8)
        return names, targets

    def _read_folder(self) -> tuple[list[str], list[int]]:
        folder = os.path.join(self.root, FERPLUS_FOLDERS[self.split])
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"FERPlus folder not found: {folder} (and no "
                                    f"{os.path.join(self.root, 'fer2013new.csv')})")
        label = os.path.join(folder, "label.csv")
        if not os.path.isfile(label):
            raise FileNotFoundError(f"FERPlus label file not found: {label}")
        names: list[str] = []
        targets: list[int] = []
        seen: dict[str, int] = {}
        with open(label, newline="", encoding="utf-8-sig") as f:
            for lineno, row in enumerate(csv.reader(f), 1):
                if not row:
                    continue
                if len(row) == 12 and row[1].strip().startswith("("):
                    row = [row[0]] + row[2:]
                if len(row) != 11:
                    raise ValueError(f"{label}, line {lineno}: expected 'name,[box,]10 votes', "
                                     f"got {len(row)} fields")
                claim_name(seen, row[0].strip(), label, lineno)
                target = self._target_from_fields(row[1:], f"{label}, line {lineno}")
                if target is None:
                    continue
                self._paths.append(os.path.join(folder, row[0].strip()))
                self._add(target, names, targets, row[0].strip())
        return names, targets

    # --- access -------------------------------------------------------------------------------
    def _restrict(self, keep: Sequence[int]) -> None:
        super()._restrict(keep)
        self._rows = [self._rows[i] for i in keep]
        self._soft = [self._soft[i] for i in keep]
        if self._paths:
            self._paths = [self._paths[i] for i in keep]

    def _soft_row(self, i: int) -> list[float]:
        """Sample ``i``'s vote distribution, or its class one-hot once ``targets`` moved it to
        another class (e.g. label noise)."""
        if self.targets[i] == self.targets_original[i]:
            return self._soft[i]
        return [float(c == self.targets[i]) for c in range(len(self.classes))]

    @property
    def soft_targets(self) -> torch.Tensor:
        """``[N, num_classes]`` float tensor of the targets: the vote distribution of each
        sample, or a one-hot row where ``targets`` was reassigned to another class."""
        rows = [self._soft_row(i) for i in range(len(self))]
        return torch.tensor(rows, dtype=torch.float32).reshape(-1, len(self.classes))

    def get_target(self, i: int) -> int | torch.Tensor:
        if self.label_mode == "probability":
            return torch.tensor(self._soft_row(i), dtype=torch.float32)
        return self.targets[i]

    def load_image(self, i: int) -> Image.Image:
        if self._pixels is not None:
            return Image.fromarray(self._pixels[self._rows[i]], mode="L").convert("RGB")
        return load_rgb(self._paths[i])
