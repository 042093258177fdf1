"""A run published as a registry entry, and a recipe that starts from pretrained weights."""

import torch
from _engine_tiny import BlobImages, tiny_config

from pyg_fer.engine import load_model, publish, read_card, train
from pyg_fer.models import pretrained as pw


def test_a_recipe_starts_from_a_published_run_and_its_card_records_it(tmp_path, monkeypatch):
    monkeypatch.setenv(pw.ENV_HOME, str(tmp_path / "home"))
    tr, ev = BlobImages(64, seed=1), BlobImages(32, seed=2)
    train(tiny_config(tmp_path, train={"epochs": 2}), train_dataset=tr, eval_dataset=ev)
    entry = publish(tmp_path / "run", tmp_path / "served", license="MIT",
                    name="_tiny_test_mlp.blobs")
    pw.register_weights(entry)
    try:
        # lr ~ 0: the fine-tuned weights stay those of the entry, so it must have been loaded
        cfg = tiny_config(tmp_path, model={"kwargs": {"hidden": 16,
                                                      "pretrained": "_tiny_test_mlp.blobs"}},
                          optim={"lr": 1e-12}, train={"epochs": 1}, output={"name": "ft"})
        train(cfg, train_dataset=tr, eval_dataset=ev)
    finally:
        pw.unregister_weights(entry.name)
    meta = read_card(tmp_path / "ft" / "best.json")
    assert meta["model"]["init_kwargs"] == {"pretrained": "_tiny_test_mlp.blobs"}
    assert "pretrained" not in meta["model"]["kwargs"]
    source, tuned = load_model(tmp_path / "run"), load_model(tmp_path / "ft")  # no registry
    for name in ("fc1.weight", "fc2.weight", "fc2.bias"):
        torch.testing.assert_close(tuned.state_dict()[name], source.state_dict()[name],
                                   rtol=0, atol=1e-8)
