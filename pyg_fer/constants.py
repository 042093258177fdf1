"""Facts shared by every layer, kept under all of them so each has one home."""

from __future__ import annotations

#: ImageNet normalisation: the default ``mean``/``std`` of a model's config and of the
#: transforms (the pre-trained trunks were trained with it).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: ImageNet per-channel standard deviation (RGB, in [0, 1]).
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
