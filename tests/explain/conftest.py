"""Tiny models and checkpoints of the explain tests (32 px, 16 nodes, D = 16)."""

from __future__ import annotations

import pytest
import torch

from pyg_fer import create_model

CLASSES = ["anger", "happy", "sad"]
TINY = dict(img_size=32, embed_dim=16, depth=2, grid_size=4, k=3)


def tiny_graph_model(conv: str = "rg", calibrate: bool = False, **kwargs):
    """A tiny Face2Nodes (stem embedder) in eval mode. ``calibrate``: BatchNorm statistics
    from a few random batches (no training), so that features have unit scale as in a
    trained model; at init the running statistics (0, 1) leave the block inputs at
    mean |x| ≈ 0.04 and the graph barely changes the output."""
    model = create_model("face2nodes_stem", num_classes=3, class_names=list(CLASSES),
                         conv=conv, **{**TINY, **kwargs})
    if calibrate:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = None  # cumulative average
        with torch.no_grad():
            for _ in range(3):
                model.train()(torch.randn(16, 3, 32, 32))
    return model.eval()


@pytest.fixture(autouse=True)
def _explain_tests_use_one_thread(one_thread):
    """Keep the tests light on the shared CPU."""
