"""Tiny models and checkpoints of the explain tests (32 px, 16 nodes, D = 16)."""

from __future__ import annotations

import pytest

from pyg_fer import create_model

CLASSES = ["anger", "happy", "sad"]
TINY = dict(img_size=32, embed_dim=16, depth=2, grid_size=4, k=3)


def tiny_graph_model(conv: str = "rg", **kwargs):
    return create_model("face2nodes_stem", num_classes=3, class_names=list(CLASSES),
                        conv=conv, **{**TINY, **kwargs}).eval()


@pytest.fixture(autouse=True)
def _explain_tests_use_one_thread(one_thread):
    """Keep the tests light on the shared CPU."""
