"""SyntheticFER rendered once into memory, for benchmarks that train many short runs.

Rendering a synthetic face costs about as much as a training step at small sizes, so the AGFN
benchmarks render each split once and hand the engine these in-memory datasets
(``pyg_fer.engine.train(train_dataset=..., eval_dataset=...)``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from pyg_fer.constants import IMAGENET_MEAN, IMAGENET_STD  # the engine's default normalisation
from pyg_fer.data import SyntheticFER


class TensorFER(Dataset):
    """Rendered images as a uint8 tensor; items ``(normalised image, target)``.

    ``targets`` is a settable list (the engine's label noise replaces it); ``flip`` applies a
    random horizontal flip (label-preserving on SyntheticFER) with torch's global generator.
    """

    def __init__(self, images: torch.Tensor, targets: list[int], classes: list[str],
                 flip: bool = False) -> None:
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images = images
        self.targets = list(targets)
        self.classes = list(classes)
        self.flip = flip
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = (self.images[i].float() / 255.0 - self._mean) / self._std
        if self.flip and bool(torch.rand(()) < 0.5):
            img = img.flip(-1)
        return img, int(self.targets[i])

    def copy(self, flip: bool | None = None) -> TensorFER:
        """A new dataset sharing the images, with its own (clean) copy of the targets."""
        return TensorFER(self.images, self.targets, self.classes,
                         self.flip if flip is None else flip)


def render(split: str, num_samples: int, img_size: int, seed: int = 0,
           flip: bool = False, min_intensity: float = 0.15) -> TensorFER:
    """Render ``num_samples`` SyntheticFER images of ``split`` into a :class:`TensorFER`."""
    ds = SyntheticFER(split, num_samples=num_samples, img_size=img_size, seed=seed,
                      min_intensity=min_intensity)
    arr = np.stack([np.asarray(ds[i][0]) for i in range(len(ds))])
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    return TensorFER(images, list(ds.targets), list(ds.classes), flip=flip)
