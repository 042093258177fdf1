"""pyg_fer._images.to_rgb: deep and float gray images keep their contrast in 8 bits."""

import numpy as np
from PIL import Image

from pyg_fer._images import load_rgb, to_rgb


def _gray(im):
    rgb = np.asarray(to_rgb(im))
    assert rgb.dtype == np.uint8 and (rgb[..., 0] == rgb[..., 2]).all()
    return rgb[..., 0].astype(int)


def test_float_images_in_0_1_are_intensities(tmp_path):
    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    path = tmp_path / "float.tif"
    Image.fromarray(ramp, mode="F").save(path)  # a scientific tool's float TIFF
    got = np.asarray(load_rgb(str(path)))[..., 0].astype(int)
    assert got.min() == 0 and got.max() == 255 and abs(got.mean() - 127.5) < 1
    # values beyond 1 are read as [0, 255] intensities, as before
    assert _gray(Image.fromarray(ramp * 200, mode="F")).max() == 200


def test_32_bit_gray_beyond_16_bits_is_scaled_by_its_maximum():
    ramp = (np.arange(64, dtype=np.int32).reshape(8, 8) * 100_000)  # 0 .. 6.3e6
    got = _gray(Image.fromarray(ramp, mode="I"))
    assert got.max() == 255 and (got == 255).sum() == 1 and got[0, 1] == 4  # no saturation
    small = (np.arange(64, dtype=np.int32).reshape(8, 8) * 1000)  # 16-bit range: / 257
    assert _gray(Image.fromarray(small, mode="I")).max() == round(63000 / 257)
