import pytest
import torch
from PIL import Image

from pyg_fer.data import ToRGB, build_transform


def test_eval_transform_keeps_rgb_order():
    red = Image.new("RGB", (40, 30), (255, 0, 0))
    x = build_transform(False, img_size=32, mean=(0, 0, 0), std=(1, 1, 1))(red)
    assert x.shape == (3, 32, 32)
    assert torch.allclose(x[0], torch.ones(32, 32)) and x[1:].abs().max() == 0


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
