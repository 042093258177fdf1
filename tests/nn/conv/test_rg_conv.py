import pytest
import torch
import torch.nn.functional as F
from torch_geometric.utils import to_torch_csc_tensor

from pyg_fer.nn import RGConv, dilated_knn_graph

try:
    from torch_sparse import SparseTensor
except ImportError:  # torch-sparse is optional
    SparseTensor = None


def reference_rgconv(conv, x_src, x_dst, edge_index):
    """Eq. 7-8 computed edge by edge, with h applied to the relation x_j - x_i itself."""
    out = torch.zeros(x_dst.size(0), conv.in_channels, dtype=x_src.dtype)
    for j, i in edge_index.t().tolist():
        relation = x_src[j] - x_dst[i]
        weight = torch.sigmoid(conv.gate_lin(relation))
        out[i] += weight * relation
    hidden = conv.update_lin(torch.cat([x_dst, out], dim=-1))
    return conv.act(conv.norm(hidden))


def test_repr():
    assert str(RGConv(512, 512)) == "RGConv(512, 512, gate=scalar)"
    assert str(RGConv(16, 32, gate="channel")) == "RGConv(16, 32, gate=channel)"
    with pytest.raises(ValueError, match="unknown gate 'vector'"):
        RGConv(16, 16, gate="vector")


def test_tiny_graph_equals_hand_computed_formula():
    conv = RGConv(2, 2).eval()
    with torch.no_grad():
        conv.gate_lin.weight.copy_(torch.tensor([[1.0, -1.0]]))
        conv.gate_lin.bias.fill_(0.5)
        conv.update_lin.weight.copy_(torch.eye(2, 4))  # keeps x_i only ...
        conv.update_lin.weight[:, 2:] = torch.eye(2)  # ... plus the aggregate
        conv.update_lin.bias.zero_()
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
    edge_index = torch.tensor([[1, 2, 0], [0, 0, 1]])  # 1->0, 2->0, 0->1
    # Node 0: r=(1,2): sigmoid(1-2+0.5)=sigmoid(-0.5); r=(3,-1): sigmoid(3+1+0.5)=sigmoid(4.5).
    g0 = torch.sigmoid(torch.tensor(-0.5)) * torch.tensor([1.0, 2.0]) + torch.sigmoid(
        torch.tensor(4.5)
    ) * torch.tensor([3.0, -1.0])
    # Node 1: r=(-1,-2): sigmoid(-1+2+0.5)=sigmoid(1.5). Node 2: no neighbours, g=0.
    g1 = torch.sigmoid(torch.tensor(1.5)) * torch.tensor([-1.0, -2.0])
    pre = torch.stack([x[0] + g0, x[1] + g1, x[2]])
    bn = conv.norm  # eval mode: running mean 0, var 1
    expected = F.gelu(pre / torch.sqrt(torch.tensor(1.0) + bn.eps))
    out = conv(x, edge_index)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(out, reference_rgconv(conv, x, x, edge_index), atol=1e-6)


@pytest.mark.parametrize("gate", ["scalar", "channel"])
def test_matches_reference_and_sparse_layouts(gate):
    conv = RGConv(8, 16, gate=gate).eval()
    x = torch.randn(20, 8)
    edge_index = dilated_knn_graph(x, 4, 2)
    out = conv(x, edge_index)
    assert out.shape == (20, 16)
    assert torch.allclose(out, reference_rgconv(conv, x, x, edge_index), atol=1e-5)
    adj_t = to_torch_csc_tensor(edge_index, size=(20, 20)).t()
    assert torch.allclose(conv(x, adj_t), out, atol=1e-6)
    if SparseTensor is not None:
        adj = SparseTensor.from_edge_index(edge_index, sparse_sizes=(20, 20))
        assert torch.allclose(conv(x, adj.t()), out, atol=1e-6)


def test_invariant_to_edge_order():
    conv = RGConv(8, 8).eval()
    x = torch.randn(15, 8)
    edge_index = dilated_knn_graph(x, 3)
    perm = torch.randperm(edge_index.size(1))
    assert torch.allclose(conv(x, edge_index), conv(x, edge_index[:, perm]), atol=1e-6)


@pytest.mark.parametrize("train", [False, True])
def test_equivariant_to_node_relabelling(train):
    conv = RGConv(8, 8).train(train)
    x = torch.randn(15, 8)
    edge_index = dilated_knn_graph(x, 3)
    perm = torch.randperm(15)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(15)
    out = conv(x, edge_index)
    out_perm = conv(x[perm], inverse[edge_index])
    assert torch.allclose(out_perm, out[perm], atol=1e-5)


def test_bipartite():
    conv = RGConv(8, 4).eval()
    x_src, x_dst = torch.randn(10, 8), torch.randn(3, 8)
    edge_index = torch.tensor([[0, 4, 9, 2, 7], [0, 0, 1, 2, 2]])
    out = conv((x_src, x_dst), edge_index)
    assert out.shape == (3, 4)
    assert torch.allclose(out, reference_rgconv(conv, x_src, x_dst, edge_index), atol=1e-5)
    adj_t = to_torch_csc_tensor(edge_index, size=(10, 3)).t()
    assert torch.allclose(conv((x_src, x_dst), adj_t), out, atol=1e-6)


@pytest.mark.parametrize("gate", ["scalar", "channel"])
def test_every_parameter_gets_a_gradient(gate):
    conv = RGConv(8, 8, gate=gate)
    x = torch.randn(12, 8, requires_grad=True)
    conv(x, dilated_knn_graph(x.detach(), 3)).square().sum().backward()
    for name, param in conv.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name
    assert x.grad is not None


def test_wrong_channel_count_names_the_shapes():
    with pytest.raises(ValueError, match=r"expected 8 input channels.*\(5, 6\)"):
        RGConv(8, 8)(torch.randn(5, 6), torch.tensor([[0], [1]]))




def test_bipartite_regular_layout_uses_the_same_formula():
    conv = RGConv(8, 4).eval()
    x_src, x_dst = torch.randn(10, 8), torch.randn(3, 8)
    edge_index = torch.tensor([[0, 4, 9, 2, 7, 1], [0, 0, 1, 1, 2, 2]])  # k = 2 per target
    assert torch.allclose(
        conv((x_src, x_dst), edge_index),
        reference_rgconv(conv, x_src, x_dst, edge_index),
        atol=1e-5,
    )
