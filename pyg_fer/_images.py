"""Decoding images into RGB PIL images, shared by the datasets and the predictor.

NumPy and Pillow only (no torch), so that a deployment running an exported model through
onnxruntime can read images with the same code as training did.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def to_rgb(im: Image.Image) -> Image.Image:
    """An RGB copy of any PIL image; 16-bit, 32-bit and float gray images are scaled to 8 bits.

    Pillow's own ``convert`` clips 16-bit gray (``I;16``, ``I``) values above 255 instead of
    scaling them, which turns a 16-bit photograph white; here they are divided by 257
    (65535 → 255), and 32-bit values beyond 16 bits are scaled by their maximum. ``F`` (float)
    images whose values all lie in [0, 1] are taken as [0, 1] intensities (× 255), others as
    [0, 255], clipped.
    """
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = arr.max(initial=0)
        if im.mode == "F" and arr.min(initial=0) >= 0 and top <= 1.0:
            arr = arr * 255.0
        elif im.mode == "I" and top > 65535:
            arr = arr * (255.0 / top)
        elif im.mode.startswith("I;16") or (im.mode == "I" and top > 255):
            arr = arr / 257.0
        im = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    return im if im.mode == "RGB" else im.convert("RGB")


def load_rgb(path: str, exif_transpose: bool = False) -> Image.Image:
    """Decode an image file fully and return it as an RGB PIL image.

    PIL decodes JPEG/PNG in RGB order (no BGR mix-up as with ``cv2.imread``); grayscale,
    palette, CMYK, RGBA and 16-bit images are converted to three 8-bit channels
    (:func:`to_rgb`).

    Args:
        path: the image file.
        exif_transpose: apply the EXIF orientation tag (photos from phones and cameras);
            off by default, as dataset images are stored upright.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a decodable image or is truncated (message names it).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if exif_transpose:
                im = ImageOps.exif_transpose(im)
            return to_rgb(im)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"corrupt or truncated image {path}: {exc}") from exc
