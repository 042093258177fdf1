"""``torch.compile(fullgraph=True)`` of the graph layers: no graph breaks, eager's values.

Small sizes, inductor on CPU (a few seconds each); the full model is in
``tests/models/test_models.py``."""

import pytest
import torch

from pyg_fer.nn import MRConv, RDGCNBlock, RGConv, dilated_knn, dilated_knn_graph


def _graph():
    torch.manual_seed(0)
    x = torch.randn(2, 12, 16)
    return x.view(24, 16), dilated_knn(x, 3, 2), dilated_knn_graph(x, 3, 2)


@pytest.mark.parametrize("conv_cls", [RGConv, MRConv])
@pytest.mark.parametrize("graph", ["neighbours", "edge_index"])
def test_convs_compile_fullgraph(conv_cls, graph):
    torch._dynamo.reset()
    conv = conv_cls(16, 16).eval()
    flat, nbr, edge_index = _graph()
    kwargs = {"neighbours": nbr} if graph == "neighbours" else {"edge_index": edge_index}
    compiled = torch.compile(conv, fullgraph=True)
    with torch.no_grad():
        assert torch.allclose(compiled(flat, **kwargs), conv(flat, **kwargs), atol=1e-5)


@pytest.mark.parametrize("conv", ["rg", "mr"])
def test_block_compiles_fullgraph_in_training_with_gradients(conv):
    torch._dynamo.reset()
    torch.manual_seed(0)
    block = RDGCNBlock(16, k=3, dilation=2, conv=conv).train()
    x = torch.randn(2, 12, 16, requires_grad=True)
    compiled = torch.compile(block, fullgraph=True)
    out_c = compiled(x)
    grad_c = torch.autograd.grad(out_c.square().sum(), x)[0]
    out_e = block(x)
    grad_e = torch.autograd.grad(out_e.square().sum(), x)[0]
    assert torch.allclose(out_c, out_e, atol=1e-5)
    assert torch.allclose(grad_c, grad_e, atol=1e-4)
    assert torch.equal(block.last_neighbours, dilated_knn(block.fc_in(x), 3, 2))
