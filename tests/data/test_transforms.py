import pytest
import torch
from PIL import Image

from pyg_fer.data import ToRGB, build_transform


def test_eval_transform_keeps_rgb_order():
    red = Image.new("RGB", (40, 30), (255, 0, 0))
    x = build_transform(False, img_size=32, mean=(0, 0, 0), std=(1, 1, 1))(red)
    assert x.shape == (3, 32, 32)
    assert torch.allclose(x[0], torch.ones(32, 32)) and x[1:].abs().max() == 0


def test_eval_transform_normalises_each_channel_with_the_given_mean_and_std():
    grey = Image.new("RGB", (20, 20), (51, 128, 204))  # 0.2, 0.50196, 0.8
    mean, std = (0.45, 0.5, 0.55), (0.2, 0.25, 0.3)
    x = build_transform(False, img_size=16, mean=mean, std=std)(grey)
    expected = [(v / 255 - m) / s for v, m, s in zip((51, 128, 204), mean, std, strict=True)]
    torch.testing.assert_close(x.mean(dim=(1, 2)), torch.tensor(expected), atol=1e-5, rtol=0)
    assert x.std(dim=(1, 2)).max() < 1e-5  # a flat image stays flat


@pytest.mark.parametrize("recipe", ["face2nodes", "fer"])
def test_train_recipes(recipe):
    torch.manual_seed(0)
    img = Image.new("RGB", (60, 60), (120, 30, 200))
    tf = build_transform(True, img_size=48, recipe=recipe)
    x = tf(img)
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    names = [type(t).__name__ for t in tf.transforms]
    assert "RandomHorizontalFlip" in names
    if recipe == "fer":
        erase = tf.transforms[-1]
        assert type(erase).__name__ == "RandomErasing" and erase.scale == (0.02, 0.25)
    else:
        assert "ColorJitter" in names and "RandomResizedCrop" in names


def test_grayscale_to_three_channels():
    img = Image.new("RGB", (20, 20), (200, 10, 60))
    x = build_transform(False, img_size=16, grayscale=True)(img)
    assert x.shape[0] == 3
    raw = build_transform(False, img_size=16, grayscale=True, mean=(0, 0, 0), std=(1, 1, 1))(img)
    assert torch.equal(raw[0], raw[1]) and torch.equal(raw[1], raw[2])
    gray = Image.new("L", (20, 20), 90)  # a 1-channel input still gives 3 channels
    assert build_transform(True, img_size=16)(gray).shape == (3, 16, 16)


def test_to_rgb():
    assert ToRGB()(Image.new("LA", (2, 2))).mode == "RGB"


def test_errors():
    with pytest.raises(ValueError, match="recipe 'vit'"):
        build_transform(True, recipe="vit")
    with pytest.raises(ValueError, match="img_size"):
        build_transform(True, img_size=0)
    with pytest.raises(ValueError, match="std"):
        build_transform(False, std=(0, 1, 1))
    with pytest.raises(ValueError, match="std"):
        build_transform(False, std=(float("nan"), 1, 1))


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": (1.0, 0.8)}, r"scale must be an area range \(low, high\) with 0 < low <= high "
                            r"<= 1, got \(1.0, 0.8\)"),
    ({"scale": (-0.5, 0.5)}, "scale must be an area range"),
    ({"scale": (0.0, 1.0)}, "scale must be an area range"),  # a crop of no area
    ({"scale": (0.5,)}, "scale must be an area range"),
    ({"recipe": "fer", "erasing": (0.25, 0.02)}, "erasing must be an area range"),
    ({"recipe": "fer", "erasing": (0.1, 1.5)}, "erasing must be an area range"),
    ({"color_jitter": -0.1}, "color_jitter must be >= 0"),
    ({"recipe": "fer", "erasing_prob": 1.5}, r"erasing_prob must be in \[0, 1\]"),
])
def test_bad_augmentation_ranges_fail_when_built_not_at_the_first_image(kwargs, message):
    # torchvision accepted each of these and failed (or warned) only on the first image
    with pytest.raises(ValueError, match=message):
        build_transform(True, **kwargs)


def test_16_bit_gray_is_scaled_not_clipped(tmp_path):
    import numpy as np

    from pyg_fer.data import load_rgb

    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)  # 0..63000
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # Pillow keeps 16 bits
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    for rgb in (load_rgb(str(path)), ToRGB()(Image.open(path))):
        arr = np.asarray(rgb)
        assert rgb.mode == "RGB" and (arr == expected[:, :, None]).all()


def test_load_rgb_applies_exif_orientation_on_request(tmp_path):
    import numpy as np

    from pyg_fer.data import load_rgb

    img = Image.new("RGB", (30, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white left third
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif, quality=95)
    assert load_rgb(str(path)).size == (30, 20)
    upright = load_rgb(str(path), exif_transpose=True)
    assert upright.size == (20, 30)
    arr = np.asarray(upright).mean(axis=2)
    assert arr[:10].mean() > 200 and arr[-10:].mean() < 50  # the white band is now on top


def _names(tf):
    return [type(t).__name__ for t in tf.transforms]


def test_face2nodes_training_pipeline_holds_its_parameters():
    tf = build_transform(True, img_size=48, scale=(0.5, 0.9), color_jitter=0.2)
    assert _names(tf) == ["ToRGB", "RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter",
                          "ToTensor", "Normalize"]
    crop, jitter = tf.transforms[1], tf.transforms[3]
    assert crop.size == (48, 48) and crop.scale == (0.5, 0.9) and crop.ratio == (0.9, 1.1)
    assert jitter.brightness == jitter.contrast == jitter.saturation == pytest.approx((0.8, 1.2))
    assert jitter.hue is None
    gray = build_transform(True, img_size=48, grayscale=True, color_jitter=0.2)
    assert _names(gray)[:3] == ["ToRGB", "Grayscale", "RandomResizedCrop"]
    assert gray.transforms[4].saturation is None  # no saturation to jitter in gray pixels
    assert gray(Image.new("RGB", (60, 60), (200, 10, 60))).shape == (3, 48, 48)


@pytest.mark.parametrize("img_size, pad", [(48, 7), (112, 16), (3, 1)])  # max(1, round(s / 7))
def test_fer_training_pipeline_holds_its_parameters(img_size, pad):
    tf = build_transform(True, img_size=img_size, recipe="fer", erasing=(0.1, 0.3),
                         erasing_prob=0.7)
    assert _names(tf) == ["ToRGB", "Resize", "RandomHorizontalFlip", "RandomApply", "ToTensor",
                          "Normalize", "RandomErasing"]
    apply, erase = tf.transforms[3], tf.transforms[6]
    rotate, crop = apply.transforms
    assert apply.p == 0.2 and rotate.degrees == [-20.0, 20.0]
    assert crop.size == (img_size, img_size) and crop.padding == pad
    assert erase.p == 0.7 and erase.scale == (0.1, 0.3)


@pytest.mark.parametrize("kwargs", [
    {"scale": (1.0, 1.0)}, {"scale": (0.5, 0.5)}, {"color_jitter": 0},
    {"recipe": "fer", "erasing": (0.0, 0.25)}, {"recipe": "fer", "erasing": (0.2, 0.2)},
    {"recipe": "fer", "erasing_prob": 0}, {"recipe": "fer", "erasing_prob": 1},
])
def test_the_edges_of_the_augmentation_ranges_are_accepted(kwargs):
    x = build_transform(True, img_size=16, **kwargs)(Image.new("RGB", (20, 20), (9, 99, 199)))
    assert x.shape == (3, 16, 16)


@pytest.mark.parametrize("kwargs, message", [
    ({"img_size": 16.5}, "img_size must be a positive integer, got 16.5"),
    ({"mean": (0.5, 0.5)}, r"mean/std must be 3 finite numbers with std > 0, got mean=\(0.5, "
                           r"0.5\)"),
    ({"mean": (float("nan"), 0.5, 0.5)}, "mean/std must be 3 finite numbers"),
    ({"std": (float("inf"), 1, 1)}, "mean/std must be 3 finite numbers"),
    ({"std": (1, 1)}, "mean/std must be 3 finite numbers"),
    ({"recipe": "fer", "erasing_prob": -0.1}, r"erasing_prob must be in \[0, 1\], got -0.1"),
])
def test_bad_sizes_and_statistics_are_refused_when_built(kwargs, message):
    for train in (True, False):
        with pytest.raises(ValueError, match=message):
            build_transform(train, **kwargs)
