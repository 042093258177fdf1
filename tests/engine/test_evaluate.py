"""pyg_fer.engine.evaluate: what it refuses to score, and what its loss means."""

import pytest
import torch
from _engine_tiny import CLASSES, BlobImages
from torch.utils.data import DataLoader

from pyg_fer.engine import evaluate
from pyg_fer.engine.distributed import DistInfo
from pyg_fer.models import create_model


def test_a_whole_loader_in_a_distributed_evaluation_is_refused():
    model = create_model("_tiny_test_mlp", hidden=8)
    data = BlobImages(6, seed=0)
    info = DistInfo(rank=0, world_size=2)
    with pytest.raises(ValueError, match="pass the Dataset .* or a DataLoader whose sampler is a "
                                         "ShardSampler"):
        evaluate(model, DataLoader(data, batch_size=4), dist_info=info)
    # one process: any loader; the counts are its own
    out = evaluate(model, DataLoader(data, batch_size=4))
    assert out["num_samples"] == 6 and int(out["confusion_matrix"].sum()) == 6


def test_a_diverged_model_gets_no_accuracy():
    # argmax of NaN logits is class 0: it used to score the share of class 0, and be kept
    model = create_model("_tiny_test_mlp", hidden=8)
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"not finite \(NaN or inf\) for 6 of 6 samples"):
        evaluate(model, BlobImages(6, seed=0))


def test_an_empty_set_is_an_error_not_a_nan_accuracy():
    with pytest.raises(ValueError, match="the evaluation set is empty"):
        evaluate(create_model("_tiny_test_mlp", hidden=8), BlobImages(0, seed=0))


def test_the_datasets_classes_must_be_the_models():
    data = BlobImages(6, seed=0)
    model = create_model("_tiny_test_mlp", hidden=8, class_names=CLASSES[::-1])
    with pytest.raises(ValueError, match=r"dataset's classes \['anger', .*\] differ from the "
                                         r"model's class_names \['surprise', "):
        evaluate(model, data)
    with pytest.raises(ValueError, match=r"dataset's classes"):
        evaluate(model, DataLoader(data, batch_size=4))
    # a model with another number of outputs, and no names to compare
    wide = create_model("_tiny_test_mlp", hidden=8, num_classes=6)
    with pytest.raises(ValueError, match=r"outputs have shape \(6, 6\), not \[batch, 4\]"):
        evaluate(wide, data)


def test_the_loss_names_its_kind_and_smoothing():
    model, data = create_model("_tiny_test_mlp", hidden=8), BlobImages(8, seed=0)
    plain = evaluate(model, data)
    smoothed = evaluate(model, data, label_smoothing=0.1)
    assert (plain["loss_kind"], plain["label_smoothing"]) == ("ce", 0.0)
    assert smoothed["label_smoothing"] == 0.1 and smoothed["loss"] != plain["loss"]
    assert evaluate(model, data, loss="mse")["loss_kind"] == "mse"


def test_the_loss_is_the_mean_over_samples_whatever_the_batch_size():
    model, data = create_model("_tiny_test_mlp", hidden=8).eval(), BlobImages(8, seed=0)
    images = torch.stack([data[i][0] for i in range(len(data))])
    targets = torch.tensor([data[i][1] for i in range(len(data))])
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(images), targets).item()
    for batch_size in (3, 8):  # 3: a last batch of 2 weighs 2/8, not 1/3
        assert evaluate(model, data, batch_size=batch_size)["loss"] == pytest.approx(expected)


def test_a_double_model_is_evaluated_at_its_precision():
    model, data = create_model("_tiny_test_mlp", hidden=8).eval(), BlobImages(8, seed=0)
    ref = evaluate(model, data)
    out = evaluate(model.double(), data)
    assert torch.equal(out["confusion_matrix"], ref["confusion_matrix"])
    assert out["loss"] == pytest.approx(ref["loss"], abs=1e-6)
