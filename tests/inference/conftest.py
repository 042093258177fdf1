"""Shared fixtures of the inference tests: a tiny saved checkpoint and real photographs.

The photographs ship inside scikit-image's wheel (``skimage.data.astronaut()``: one real face;
``lfw_subset()``: 25×25 face and non-face crops); nothing is downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))
import _engine_tiny  # noqa: E402, F401  (registers the tiny test models)

from pyg_fer.engine import save_checkpoint  # noqa: E402
from pyg_fer.models import create_model  # noqa: E402

CLASSES = ["anger", "happy", "sad", "surprise"]
#: The astronaut's face in skimage.data.astronaut() (512×512), eyebrows to chin and cheek to
#: cheek: a box set by hand and checked by eye on the image (x, y, w, h).
ASTRONAUT_FACE = (175, 65, 100, 115)


def tiny_model(img_size: int = 16, mean=(0.45, 0.5, 0.55), std=(0.2, 0.25, 0.3)):
    model = create_model("_tiny_test_mlp", num_classes=len(CLASSES), img_size=img_size,
                         class_names=list(CLASSES), mean=list(mean), std=list(std))
    return model.eval()


@pytest.fixture(autouse=True)
def _inference_tests_use_one_thread(one_thread):
    """Keep the tests light on the shared CPU."""


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A saved tiny checkpoint (16 px, non-ImageNet mean/std, 4 named classes); its stem."""
    stem = tmp_path / "ckpt" / "best"
    save_checkpoint(tiny_model(), stem)
    return stem


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return data.astronaut()


@pytest.fixture(scope="session")
def lfw():
    """(images 200×25×25 float in [0, 1], is_face) of scikit-image's LFW subset."""
    data = pytest.importorskip("skimage.data")
    images = data.lfw_subset()
    is_face = np.arange(len(images)) < 100  # the first 100 are faces, the others are not
    return images, is_face


def iou(a, b) -> float:
    """Intersection over union of two ``x, y, w, h`` boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def centre_in(box, region) -> bool:
    """Whether ``box``'s centre lies inside ``region`` (both ``x, y, w, h``)."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    x, y, w, h = region
    return x <= cx <= x + w and y <= cy <= y + h
