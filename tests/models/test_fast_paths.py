"""The paths Face2Nodes runs for speed compute what the reference path computes, in float32.

Reference: every graph convolution through PyG's generic ``propagate`` over ``edge_index``
(a message-passing hook turns the fused neighbour-table path off, as ``can_fuse`` documents)
and the k-NN's traced self-pair mask. Optimised: the fused paths (the block's gated adjacency
and one batched product, the in-place self-pair fill) eagerly, and the model compiled. On a
GPU this is the check that tuning for speed left the arithmetic alone (issue 11)."""

import contextlib

import pytest
import torch

import pyg_fer
from pyg_fer.nn import knn as knn_module
from torch_geometric.nn import MessagePassing

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
SMALL = dict(embed_dim=64, depth=5, grid_size=5, k=4)  # depth 5: a dilation-2 block too


@contextlib.contextmanager
def reference_path(model, monkeypatch):
    """Every conv of ``model`` through generic ``propagate``; the k-NN's out-of-place mask."""
    convs = [m for m in model.modules() if isinstance(m, MessagePassing)]
    handles = [c.register_propagate_forward_hook(lambda mod, inputs, out: out) for c in convs]
    with monkeypatch.context() as patch:
        patch.setattr(knn_module, "_tracing", lambda: True)
        try:
            yield len(convs)
        finally:
            for h in handles:
                h.remove()


@contextlib.contextmanager
def exact_float32():
    """No TF32 on the GPU's matrix units, so float32 means float32 on every path."""
    if not torch.cuda.is_available():
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _model_and_batch(name, device):
    torch.manual_seed(0)
    model = pyg_fer.create_model(name, img_size=80, **SMALL).to(device).eval()
    x = torch.randn(6, 3, 80, 80, device=device)
    return model, x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["face2nodes", "face2nodes_mr"])
def test_fused_paths_equal_the_propagate_reference(name, device, monkeypatch):
    model, x = _model_and_batch(name, device)
    with exact_float32(), torch.no_grad():
        fast = model(x)
        fast_graphs = [g.clone() for g in model.graphs]
        with reference_path(model, monkeypatch) as num_convs:
            ref = model(x)
        ref_graphs = model.graphs
    assert num_convs == SMALL["depth"]
    for a, b in zip(fast_graphs, ref_graphs, strict=True):
        assert torch.equal(a, b)  # the same neighbours in every block
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", [pytest.param("cpu", marks=pytest.mark.slow),
                                    pytest.param("cuda", marks=pytest.mark.cuda)])
def test_compiled_model_equals_the_propagate_reference(device, monkeypatch):
    torch._dynamo.reset()
    model, x = _model_and_batch("face2nodes", device)
    with exact_float32(), torch.no_grad():
        compiled = torch.compile(model)(x)
        with reference_path(model, monkeypatch):
            ref = model(x)
    torch.testing.assert_close(compiled, ref, rtol=1e-4, atol=1e-5)
