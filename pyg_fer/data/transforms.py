"""Training and evaluation transforms: the Face2Nodes recipe and the common FER recipe.

Datasets in :mod:`pyg_fer.data` always return RGB PIL images (FER2013/FERPlus 48x48 gray
pixels are replicated to three channels on decode), so every transform starts from RGB. The
``grayscale`` option makes a pipeline see what FER2013-style data looks like: it converts to
luminance and back to three identical channels, so a 3-channel model accepts it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image
from torchvision import transforms as T

from pyg_fer.constants import IMAGENET_MEAN, IMAGENET_STD
from pyg_fer.data.base import to_rgb

RECIPES = ("face2nodes", "fer")


class ToRGB:
    """Convert any PIL image (L, LA, P, RGBA, CMYK, I;16 ...) to RGB (16-bit gray scaled to 8
    bits, see :func:`pyg_fer.data.to_rgb`); tensors pass through."""

    def __call__(self, img: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        if isinstance(img, Image.Image) and img.mode != "RGB":
            return to_rgb(img)
        return img

    def __repr__(self) -> str:
        return "ToRGB()"


def _check_range(name: str, bounds: Sequence[float], low_open: bool) -> None:
    """An area range ``(low, high)`` with ``0 < low`` (``0 <= low`` unless ``low_open``),
    ``low <= high <= 1``."""
    ok = len(bounds) == 2 and bounds[0] <= bounds[1] <= 1
    ok = ok and (bounds[0] > 0 if low_open else bounds[0] >= 0)
    if not ok:
        low = "0 <" if low_open else "0 <="
        raise ValueError(f"{name} must be an area range (low, high) with {low} low <= high <= 1, "
                         f"got {tuple(bounds)}")


def build_transform(
    train: bool,
    img_size: int = 224,
    recipe: str = "face2nodes",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    grayscale: bool = False,
    scale: tuple[float, float] = (0.8, 1.0),
    color_jitter: float = 0.3,
    erasing: tuple[float, float] = (0.02, 0.25),
    erasing_prob: float = 0.5,
) -> T.Compose:
    """Build the training or evaluation transform (PIL RGB image → normalised float tensor).

    Recipes (training only; evaluation is always resize → tensor → normalise):

    * ``'face2nodes'`` (Face2Nodes Sec. 4.2: "random horizontal flips, random scale, and color
      jitter"): ``RandomResizedCrop(img_size, scale, ratio=(0.9, 1.1))``, horizontal flip,
      ``ColorJitter(color_jitter, color_jitter, color_jitter)``, ImageNet normalisation.
    * ``'fer'`` (the recipe common to SCN/EAC-style FER code): resize, horizontal flip, with
      p = 0.2 a rotation of up to 20° and a padded random crop, normalisation, then
      ``RandomErasing(p=erasing_prob, scale=erasing)`` (default ``(0.02, 0.25)``).

    Args:
        train (bool): training (augmented) or evaluation transform.
        img_size (int): output side (default: ``224``).
        recipe (str): ``'face2nodes'`` or ``'fer'`` (default: ``'face2nodes'``).
        mean, std: normalisation statistics (default: ImageNet).
        grayscale (bool): convert to gray with 3 identical channels (default: ``False``).
        scale (tuple): area range of the Face2Nodes random scale (default: ``(0.8, 1.0)``).
        color_jitter (float): brightness/contrast/saturation strength (default: ``0.3``).
        erasing (tuple): RandomErasing area range of the FER recipe (default: ``(0.02, 0.25)``).
        erasing_prob (float): RandomErasing probability of the FER recipe (default: ``0.5``).

    Raises:
        ValueError: on an unknown recipe, a bad size or statistics, an area range that is not
            ``low <= high`` within ``[0, 1]``, a negative jitter or a probability outside
            ``[0, 1]``.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown transform recipe {recipe!r}; expected one of {RECIPES}")
    if int(img_size) != img_size or img_size < 1:
        raise ValueError(f"img_size must be a positive integer, got {img_size}")
    if (len(mean) != 3 or len(std) != 3 or not all(math.isfinite(m) for m in mean)
            or not all(0 < s < math.inf for s in std)):
        raise ValueError(f"mean/std must be 3 finite numbers with std > 0, got mean={mean}, "
                         f"std={std}")
    _check_range("scale", scale, low_open=True)
    _check_range("erasing", erasing, low_open=False)
    if not color_jitter >= 0:
        raise ValueError(f"color_jitter must be >= 0, got {color_jitter}")
    if not 0 <= erasing_prob <= 1:
        raise ValueError(f"erasing_prob must be in [0, 1], got {erasing_prob}")
    size = (int(img_size), int(img_size))
    ops: list = [ToRGB()]
    if grayscale:
        ops.append(T.Grayscale(num_output_channels=3))
    if not train:
        ops += [T.Resize(size), T.ToTensor(), T.Normalize(mean, std)]
        return T.Compose(ops)
    if recipe == "face2nodes":
        ops += [
            T.RandomResizedCrop(size, scale=tuple(scale), ratio=(0.9, 1.1)),
            T.RandomHorizontalFlip(),
            T.ColorJitter(color_jitter, color_jitter, 0.0 if grayscale else color_jitter),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    else:
        pad = max(1, round(img_size / 7))
        ops += [
            T.Resize(size),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.RandomRotation(20), T.RandomCrop(size, padding=pad)], p=0.2),
            T.ToTensor(),
            T.Normalize(mean, std),
            T.RandomErasing(p=erasing_prob, scale=tuple(erasing)),
        ]
    return T.Compose(ops)
