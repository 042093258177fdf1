"""pyg_fer.engine.evaluate: a loader every rank reads whole is not summed over ranks."""

import pytest
from _engine_tiny import BlobImages
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
