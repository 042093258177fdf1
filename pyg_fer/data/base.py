"""Shared machinery of pyg-fer's datasets: targets, names, subsets, summaries, safe decoding."""

from __future__ import annotations

import os
import posixpath
import warnings
from abc import ABCMeta, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from pyg_fer._images import IMG_EXTENSIONS, load_rgb, to_rgb  # noqa: F401  (re-exported)


def read_name_list(path: str) -> list[str]:
    """Read a subset list: one name per line (first whitespace-separated token; blank lines and
    ``#`` comments ignored), e.g. RAF-DB's/FERPlus's occlusion and pose test lists.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"subset list not found: {path}")
    names = []
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                names.append(line.split()[0])
    return names


def claim_name(seen: dict[str, int], name: str, path: str, lineno: int) -> None:
    """Record that ``name`` is listed on ``lineno`` of ``path``; a second listing is an error.

    Raises:
        ValueError: naming the file, this line and the line that listed ``name`` first.
    """
    if name in seen:
        raise ValueError(f"{path}, line {lineno}: {name!r} already listed on line {seen[name]}")
    seen[name] = lineno


def name_key(name: str) -> str:
    """Normalise an image name for subset matching: basename, no extension, no ``_aligned``."""
    stem = os.path.splitext(os.path.basename(name.replace("\\", "/")))[0]
    return stem.removesuffix("_aligned")


def _path_key(name: str) -> str:
    """A relative image path for subset matching: ``/`` separators, no ``./``, no extension,
    no ``_aligned`` suffix."""
    path = posixpath.normpath(name.replace("\\", "/"))
    return posixpath.splitext(path)[0].removesuffix("_aligned")


class FERDataset(Dataset, metaclass=ABCMeta):
    """Base class: ``(image, target)`` samples with ``classes``, settable ``targets`` and ``names``.

    Subclasses implement :meth:`load_image` (an RGB PIL image for sample ``i``) and may override
    :meth:`get_target` (e.g. soft targets). ``targets`` can be reassigned (label-noise
    injection); :meth:`__getitem__` then returns the new labels, while ``targets_original``
    keeps the labels read from disk.

    Args:
        classes: class names, index = label.
        targets: one int label per sample.
        names: one identifier per sample (relative image path or file name), used by subset
            lists and error messages.
        transform: applied to the PIL image.
        source: a short description used by :meth:`summary`.
    """

    def __init__(self, classes: Sequence[str], targets: Sequence[int], names: Sequence[str],
                 transform: Callable | None = None, source: str = "") -> None:
        if len(targets) != len(names):
            raise ValueError(f"{len(targets)} targets but {len(names)} names")
        self.classes = list(classes)
        self.transform = transform
        self.names = list(names)
        self._targets: list[int] = []
        self.targets = targets
        self.targets_original = list(self._targets)
        self.source = source
        self.skipped: list[tuple[str, str]] = []  # (file, reason) of samples dropped as corrupt
        self.dropped: Counter[str] = Counter()  # reason -> label rows not used by design

    # --- targets ------------------------------------------------------------------------------
    @property
    def targets(self) -> list[int]:
        """Integer class index per sample; assignable (same length, values in range)."""
        return self._targets

    @targets.setter
    def targets(self, value: Sequence[int] | torch.Tensor) -> None:
        vals = value.tolist() if hasattr(value, "tolist") else list(value)
        if len(vals) != len(self.names):
            raise ValueError(f"targets must have {len(self.names)} entries, got {len(vals)}")
        num_classes = len(self.classes)
        out = []
        for index, value in enumerate(vals):
            as_int = int(value)
            if as_int != value or not 0 <= as_int < num_classes:
                raise ValueError(f"target {value!r} at index {index} is not a class index in "
                                 f"[0, {num_classes})")
            out.append(as_int)
        self._targets = out

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # --- sample access -----------------------------------------------------------------------
    @abstractmethod
    def load_image(self, i: int) -> Image.Image:
        """Return sample ``i`` as an RGB PIL image (before ``transform``)."""

    def get_target(self, i: int) -> Any:
        return self._targets[i]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for dataset of size {len(self)}")
        i = i % len(self)
        img = self.load_image(i)
        if self.transform is not None:
            img = self.transform(img)
        return img, self.get_target(i)

    # --- subsets, corrupt files, summaries ----------------------------------------------------
    def _restrict(self, keep: Sequence[int]) -> None:
        """Keep only samples ``keep`` (subclasses extend this for their own per-sample lists)."""
        keep = list(keep)
        self.names = [self.names[i] for i in keep]
        self._targets = [self._targets[i] for i in keep]
        self.targets_original = [self.targets_original[i] for i in keep]

    def apply_subset(self, subset: str | Sequence[str]) -> None:
        """Restrict the dataset to the names listed in a subset file (or a list of names).

        A listed name that is a sample's name, or its relative path with another extension or
        an ``_aligned`` suffix (e.g. ``happy/0001.png``), selects that sample. Otherwise it
        matches on the basename without extension and without an ``_aligned`` suffix, so
        ``test_0001.jpg`` selects RAF-DB's ``test_0001_aligned.jpg``; a basename shared by
        several samples must then be listed with its path.

        Raises:
            FileNotFoundError: if the list file does not exist.
            ValueError: if the list names nothing, a listed name is not in this dataset, or a
                listed basename fits several samples (nothing is silently ignored or doubled).
        """
        wanted = read_name_list(subset) if isinstance(subset, str) else list(subset)
        where = subset if isinstance(subset, str) else "subset list"
        source = self.source or "the dataset"
        if not wanted:
            raise ValueError(f"{where}: lists no names, so it would leave {source} empty")
        exact = {n: i for i, n in enumerate(self.names)}
        by_path: dict[str, list[int]] = {}
        by_key: dict[str, list[int]] = {}
        for i, n in enumerate(self.names):
            by_path.setdefault(_path_key(n), []).append(i)
            by_key.setdefault(name_key(n), []).append(i)
        keep, missing, ambiguous = set(), [], []
        for n in wanted:
            hits = [exact[n]] if n in exact else (by_path.get(_path_key(n))
                                                  or by_key.get(name_key(n)))
            if not hits:
                missing.append(n)
            elif len(hits) > 1:
                ambiguous.append(f"{n!r} fits {[self.names[i] for i in hits[:3]]}")
            else:
                keep.add(hits[0])
        if missing:
            raise ValueError(f"{where}: {len(missing)} listed name(s) are not in {source}, "
                             f"e.g. {missing[:3]}")
        if ambiguous:
            raise ValueError(f"{where}: {len(ambiguous)} listed name(s) fit several samples of "
                             f"{source}; list them with their folder, e.g. {ambiguous[0]}")
        self._restrict(sorted(keep))

    def _drop_unreadable(self, paths: Sequence[str], skip_corrupt: bool) -> None:
        """Check that every image exists (always) and decodes (when ``skip_corrupt``).

        Without ``skip_corrupt`` a missing file raises at construction and a corrupt one when it
        is loaded; with it, bad files are dropped, recorded in ``skipped`` and reported once.
        """
        bad: list[tuple[int, str, str]] = []
        for i, p in enumerate(paths):
            if not os.path.isfile(p):
                if not skip_corrupt:
                    raise FileNotFoundError(
                        f"image file not found: {p} (listed as {self.names[i]})")
                bad.append((i, p, "missing"))
            elif skip_corrupt:
                try:
                    load_rgb(p)
                except ValueError as exc:
                    bad.append((i, p, str(exc)))
        if bad:
            bad_idx = {b[0] for b in bad}
            self.skipped = [(p, r) for _, p, r in bad]
            self._restrict([i for i in range(len(self.names)) if i not in bad_idx])
            warnings.warn(f"{self.source}: skipped {len(bad)} unreadable image(s), first: "
                          f"{bad[0][1]} ({bad[0][2]})", stacklevel=3)

    def class_counts(self) -> list[int]:
        """Number of samples per class (from ``targets``)."""
        counts = [0] * len(self.classes)
        for t in self._targets:
            counts[t] += 1
        return counts

    def summary(self) -> str:
        """A human-readable table: per-class counts, total, skipped and dropped rows."""
        counts = self.class_counts()
        width = max([len(c) for c in self.classes] + [5])
        lines = [(f"{self.source or type(self).__name__}: {len(self)} samples, "
                 f"{len(self.classes)} classes")]
        for i, (c, n) in enumerate(zip(self.classes, counts, strict=False)):
            pct = 100.0 * n / max(1, len(self))
            lines.append(f"  {i:>2} {c:<{width}} {n:>7} ({pct:5.1f}%)")
        if self.dropped:
            lines.append("  rows dropped: " + ", ".join(
                f"{k}={v}" for k, v in sorted(self.dropped.items())))
        if self.skipped:
            lines.append(f"  skipped unreadable images: {len(self.skipped)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, n={len(self)}, classes={self.classes})"
