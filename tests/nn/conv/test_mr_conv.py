import torch
import torch.nn.functional as F
from torch_geometric.utils import to_torch_csc_tensor

from pyg_fer.nn import MRConv, RGConv, dilated_knn_graph


def test_repr_and_same_constructor_shape_as_rgconv():
    assert str(MRConv(512, 512)) == "MRConv(512, 512)"
    mr, rg = MRConv(8, 16), RGConv(8, 16)
    assert mr.update_lin.weight.shape == rg.update_lin.weight.shape


def test_tiny_graph_equals_hand_computed_max():
    conv = MRConv(2, 2).eval()
    with torch.no_grad():
        conv.update_lin.weight.copy_(torch.cat([torch.zeros(2, 2), torch.eye(2)], dim=1))
        conv.update_lin.bias.zero_()
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0], [-3.0, 5.0]])
    edge_index = torch.tensor([[1, 2, 0], [0, 0, 1]])
    # Node 0: max((1,-2), (-3,5)) = (1, 5); node 1: (0,0)-(1,-2) = (-1, 2); node 2: isolated -> 0.
    aggr = torch.tensor([[1.0, 5.0], [-1.0, 2.0], [0.0, 0.0]])
    expected = F.gelu(aggr / torch.sqrt(torch.tensor(1.0) + conv.norm.eps))
    assert torch.allclose(conv(x, edge_index), expected, atol=1e-6)


def test_sparse_layout_edge_order_and_bipartite():
    conv = MRConv(8, 16).eval()
    x = torch.randn(20, 8)
    edge_index = dilated_knn_graph(x, 4, 2)
    out = conv(x, edge_index)
    assert out.shape == (20, 16)
    adj_t = to_torch_csc_tensor(edge_index, size=(20, 20)).t()
    assert torch.allclose(conv(x, adj_t), out, atol=1e-6)
    perm = torch.randperm(edge_index.size(1))
    assert torch.allclose(conv(x, edge_index[:, perm]), out, atol=1e-6)
    x_dst = torch.randn(3, 8)
    bip = torch.tensor([[0, 4, 9], [0, 0, 2]])
    assert conv((x, x_dst), bip).shape == (3, 16)


def test_every_parameter_gets_a_gradient():
    conv = MRConv(8, 8)
    x = torch.randn(12, 8)
    conv(x, dilated_knn_graph(x, 3)).square().sum().backward()
    for name, param in conv.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name
