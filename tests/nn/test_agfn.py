import pytest
import torch

from pyg_fer.nn import AGFN


def dense_gcn(x, adjacency, agfn):
    """Eq. 6: D^-1/2 (A + I) D^-1/2 X W + b with D_ii = 1 + sum_j A_ij."""
    a_tilde = adjacency + torch.eye(adjacency.size(0))
    d = a_tilde.sum(1).rsqrt()
    xw = x @ agfn.gcn.lin.weight.t()
    return d[:, None] * a_tilde * d[None, :] @ xw + agfn.gcn.bias


@pytest.mark.parametrize("symmetric", [False, True])
def test_gcn_normalisation_equals_dense_eq_6(symmetric):
    torch.manual_seed(1)
    agfn = AGFN(6, 4, alpha=3.0, beta=0.2, symmetric=symmetric).train()
    x = torch.randn(8, 6)
    graph = agfn.graph(x, sample=True)
    out = agfn.gcn(x, graph.edge_index, graph.edge_weight)
    assert 0 < int(graph.adjacency.sum()) < 56
    assert torch.allclose(out, dense_gcn(x, graph.adjacency, agfn), atol=1e-5)


def test_eval_is_deterministic_expected_and_identity():
    agfn = AGFN(6, 4, eval_graph="expected").eval()
    x = torch.randn(10, 6)
    out = agfn(x)
    assert torch.equal(out, agfn(x))
    prob = agfn.graph.probabilities(x)
    assert torch.allclose(out, dense_gcn(x, prob.detach(), agfn), atol=1e-5)
    agfn.eval_graph = "identity"
    ident = agfn(x)
    assert torch.allclose(ident, x @ agfn.gcn.lin.weight.t() + agfn.gcn.bias, atol=1e-6)
    # Identity mode: a sample's output does not depend on the rest of the batch.
    assert torch.allclose(agfn(x[:1]), ident[:1], atol=1e-6)


def test_training_samples_and_averages():
    torch.manual_seed(0)
    agfn = AGFN(6, 4, num_samples=3).train()
    x = torch.randn(10, 6)
    torch.manual_seed(5)
    stacked = agfn(x, return_samples=True)
    torch.manual_seed(5)
    mean = agfn(x)
    assert stacked.shape == (3, 10, 4)
    assert torch.allclose(stacked.mean(0), mean, atol=1e-6)


def test_parameter_split_for_coordinate_descent():
    agfn = AGFN(6, 4)
    graph = list(agfn.graph_parameters())
    network = list(agfn.network_parameters())
    assert graph == [agfn.graph.alpha, agfn.graph.beta]
    assert {id(p) for p in graph}.isdisjoint(id(p) for p in network)
    assert len(graph) + len(network) == len(list(agfn.parameters()))


def test_alpha_beta_get_gradients_through_the_gcn():
    torch.manual_seed(0)
    agfn = AGFN(6, 3).train()
    x = torch.randn(12, 6)
    target = torch.randn(12, 3)
    torch.nn.functional.mse_loss(agfn(x), target).backward()
    for name, param in agfn.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name


def test_errors_and_repr():
    assert str(AGFN(512, 512)) == "AGFN(512, 512, num_samples=1, eval_graph=identity)"
    with pytest.raises(ValueError, match="unknown eval_graph 'batch'"):
        AGFN(4, 4, eval_graph="batch")
    with pytest.raises(ValueError, match=r"shape \[B, 4\], got \(3, 5\)"):
        AGFN(4, 4)(torch.randn(3, 5))


def test_cosine_threshold_gcn_links_exactly_the_similar_pairs():
    from pyg_fer.nn import CosineThresholdGCN

    layer = CosineThresholdGCN(2, 2, threshold=0.5)
    x = torch.tensor([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0], [0.6, 0.8]])
    # cos(0,1)=0.98, cos(0,3)=0.6, cos(1,3)=0.75, cos(2,3)=0.8, cos(0,2)=0, cos(1,2)=0.196
    pairs = sorted(map(tuple, layer.edge_index(x).t().tolist()))
    assert pairs == sorted([(1, 0), (0, 1), (3, 0), (0, 3), (3, 1), (1, 3), (3, 2), (2, 3)])
    adjacency = torch.zeros(4, 4)
    adjacency[torch.tensor([0, 1, 0, 3, 1, 3, 2, 3]), torch.tensor([1, 0, 3, 0, 3, 1, 3, 2])] = 1
    expected = dense_gcn(x, adjacency, layer)
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert str(layer) == "CosineThresholdGCN(2, 2, threshold=0.5)"


def test_disabled_graph_is_the_identity_in_training_too():
    agfn = AGFN(6, 4).train()
    agfn.use_graph = False
    x = torch.randn(10, 6)
    assert torch.allclose(agfn(x), x @ agfn.gcn.lin.weight.t() + agfn.gcn.bias, atol=1e-6)


def test_global_graph_without_a_process_group_is_the_local_graph():
    torch.manual_seed(0)
    agfn = AGFN(6, 4, num_samples=2, global_graph=True).train()
    x = torch.randn(10, 6)
    torch.manual_seed(3)
    on = agfn(x, return_samples=True)
    agfn.global_graph = False
    torch.manual_seed(3)
    assert torch.equal(on, agfn(x, return_samples=True))
    assert str(AGFN(4, 4, global_graph=True)) == (
        "AGFN(4, 4, num_samples=1, eval_graph=identity, global_graph=True)")


def test_rows_of_the_gcn_equal_the_full_gcn_rows():
    # the global-graph path computes only its own rows, with degrees from the whole graph
    torch.manual_seed(0)
    agfn = AGFN(6, 4, alpha=3.0, beta=0.2).train()
    x = torch.randn(10, 6, requires_grad=True)
    a = torch.bernoulli(torch.full((10, 10), 0.4)).fill_diagonal_(0)
    rows = slice(3, 7)
    part = agfn._convolve_rows(x, a, rows)
    full = agfn._convolve(x, sample=True, adjacency=a)
    torch.testing.assert_close(part, full[rows])
    torch.testing.assert_close(full[rows], dense_gcn(x, a, agfn)[rows])
    g_part = torch.autograd.grad(part.square().sum(), [x, agfn.graph.alpha])
    g_full = torch.autograd.grad(full[rows].square().sum(), [x, agfn.graph.alpha])
    for p, f in zip(g_part, g_full, strict=True):
        torch.testing.assert_close(p, f)


def test_num_samples_must_be_positive():
    with pytest.raises(ValueError, match="num_samples must be >= 1, got 0"):
        AGFN(4, 4, num_samples=0)


def test_disabled_graph_is_the_identity_in_every_eval_graph():
    torch.manual_seed(0)
    x = torch.randn(6, 5)
    for eval_graph in ("expected", "bank"):
        agfn = AGFN(5, 3, alpha=3.0, beta=0.5, eval_graph=eval_graph, bank_size=4).train()
        agfn(torch.randn(8, 5))  # fills the bank
        agfn.eval()
        identity = x @ agfn.gcn.lin.weight.t() + agfn.gcn.bias
        assert not torch.allclose(agfn(x), identity, atol=1e-4), eval_graph
        agfn.use_graph = False
        torch.testing.assert_close(agfn(x), identity)


def test_rows_of_the_gcn_add_the_bias():
    torch.manual_seed(0)
    agfn = AGFN(6, 4, alpha=3.0, beta=0.2).train()
    with torch.no_grad():
        agfn.gcn.bias.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
    x = torch.randn(5, 6)
    a = torch.bernoulli(torch.full((5, 5), 0.5)).fill_diagonal_(0)
    torch.testing.assert_close(agfn._convolve_rows(x, a, slice(1, 4)), dense_gcn(x, a, agfn)[1:4])


def test_cosine_threshold_is_strict_and_checks_its_input():
    from pyg_fer.nn import CosineThresholdGCN

    # cos((1, 0), (1, √3)) is exactly 1/2: at the threshold, not above it, so not linked.
    x = torch.tensor([[1.0, 0.0], [1.0, 3.0**0.5], [1.0, -0.1]])
    pairs = sorted(map(tuple, CosineThresholdGCN(2, 2, threshold=0.5).edge_index(x).t().tolist()))
    assert pairs == [(0, 2), (2, 0)]
    with pytest.raises(ValueError, match=r"shape \[B, 2\], got \(3, 5\)"):
        CosineThresholdGCN(2, 2)(torch.randn(3, 5))
