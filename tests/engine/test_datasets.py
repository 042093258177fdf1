"""pyg_fer.engine.datasets: the recipe's splits, and the warning when they are the same images."""

import warnings

import pytest
from PIL import Image

from pyg_fer.engine import load_config
from pyg_fer.engine.datasets import build_datasets, normalization


def _folder_recipe(root):
    return load_config("synthetic_resnet18", ["data.name=imagefolder", f"data.root={root}",
                                              "data.options={}", "data.train_options={}",
                                              "data.eval_options={}", "data.img_size=16"])


def _images(root, rels):
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(root / rel)


def test_flat_image_folder_warns_that_evaluation_is_on_training_images(tmp_path):
    _images(tmp_path, ["happy/0.png", "sad/0.png"])
    cfg = _folder_recipe(tmp_path)
    with pytest.warns(UserWarning, match=r"evaluation split 'test' is the training split "
                                         r"'train''s images"):
        tr, ev = build_datasets(cfg, *normalization(cfg))
    assert tr.names == ev.names == ["happy/0.png", "sad/0.png"]


def test_split_folders_do_not_warn(tmp_path):
    _images(tmp_path, ["train/happy/0.png", "train/sad/0.png", "test/happy/1.png"])
    cfg = _folder_recipe(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr, ev = build_datasets(cfg, *normalization(cfg))
    assert (tr.names, ev.names) == (["happy/0.png", "sad/0.png"], ["happy/1.png"])


@pytest.mark.parametrize("override, key", [
    ("data.train_options.num_sample=100", "data.train_options.num_sample"),
    ("data.options.seeed=1", "data.options.seeed"),
])
def test_a_misspelt_dataset_option_is_named_by_its_config_key(override, key):
    # it used to reach the dataset class as a bare TypeError (a traceback from the CLI)
    cfg = load_config("synthetic_face2nodes", [override])
    with pytest.raises(ValueError, match=rf"config key '{key}': dataset 'synthetic' has no "
                                         r"option '\w+'; valid options: num_samples"):
        build_datasets(cfg, *normalization(cfg))
