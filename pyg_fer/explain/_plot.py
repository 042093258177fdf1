"""Figure helpers of the explain package: display images, heat-map overlays, PNG writing.

Figures are built on :class:`matplotlib.figure.Figure` directly (no ``pyplot`` state, no
backend switch in the caller's process) and every PNG is written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pyg_fer._files import atomic_write_bytes


def as_display(display: Any) -> np.ndarray:
    """``[H, W, 3]`` uint8 from a float array/tensor in ``[0, 1]`` or a uint8 one."""
    arr = display.detach().cpu().numpy() if isinstance(display, Tensor) else np.asarray(display)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"display must be an [H, W, 3] image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.rint(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    return arr


def denormalise(image: Tensor, mean: Sequence[float], std: Sequence[float],
                size: int | None = None) -> np.ndarray:
    """The model input ``[3, H, W]`` (normalised) back as an ``[S, S, 3]`` uint8 picture,
    resized (bicubic) to ``size`` when given: what the model saw, for drawing on."""
    from PIL import Image

    if image.dim() == 4:
        image = image[0]
    m = torch.as_tensor(mean, dtype=image.dtype).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=image.dtype).view(-1, 1, 1)
    rgb = (image.detach().cpu() * s + m).clamp(0, 1).permute(1, 2, 0).numpy()
    arr = np.rint(rgb * 255.0).astype(np.uint8)
    if size is not None and arr.shape[:2] != (size, size):
        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BICUBIC))
    return arr


def overlay_heatmap(display: Any, cam: Tensor, alpha: float = 0.5,
                    cmap: str = "jet") -> np.ndarray:
    """``display`` with ``cam`` (``[h, w]`` in ``[0, 1]``, resized bilinearly to the display)
    blended over it in a colour map; ``[H, W, 3]`` uint8."""
    from matplotlib import colormaps

    base = as_display(display)
    h, w = base.shape[:2]
    cam = cam.detach().float().cpu()
    if cam.dim() != 2:
        raise ValueError(f"cam must be [h, w], got shape {tuple(cam.shape)}")
    cam = torch.nn.functional.interpolate(cam[None, None], size=(h, w), mode="bilinear",
                                          align_corners=False)[0, 0].clamp(0, 1).numpy()
    heat = colormaps[cmap](cam)[..., :3] * 255.0
    out = (1.0 - alpha) * base.astype(np.float64) + alpha * heat
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """An ``[H, W, 3]`` uint8 array as a PNG, written atomically."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def new_figure(width: int, height: int, dpi: int = 100) -> Any:
    """A matplotlib ``Figure`` of exactly ``width × height`` pixels at ``dpi``."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width / dpi, height / dpi), dpi=dpi)


def save_figure(fig: Any, path: str | Path) -> Path:
    """``fig`` as a PNG at its own size and dpi, written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def node_centres(grid: tuple[int, int], height: float, width: float) -> Tensor:
    """``[N, 2]`` ``(x, y)`` centre of each node's patch for a row-major ``grid`` over an
    image of ``height × width`` pixels."""
    ids = torch.arange(grid[0] * grid[1])
    rows, cols = torch.div(ids, grid[1], rounding_mode="floor"), ids % grid[1]
    return torch.stack([(cols + 0.5) * width / grid[1], (rows + 0.5) * height / grid[0]],
                       dim=1).float()
