import math

import pytest
import torch

from pyg_fer.nn import PoissonGraph
from pyg_fer.nn.poisson import all_pairs_edge_index


def test_probabilities_follow_eq_3_and_4_with_clamped_rate():
    graph = PoissonGraph(alpha=2.0, beta=-0.5)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    prob = graph.probabilities(x).detach()
    cos = torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(x, dim=-1).t()
    rate = (2.0 * cos - 0.5).clamp(min=0)
    expected = (1 - torch.exp(-rate)) * (1 - torch.eye(4))
    assert torch.allclose(prob, expected, atol=1e-6)
    assert float(prob[0, 3]) == 0.0  # cos = -1: rate clamped at 0, never linked
    assert float(prob[0, 2]) == pytest.approx(1 - math.exp(-(2 * 2**-0.5 - 0.5)), abs=1e-6)
    assert bool((prob >= 0).all() and (prob <= 1).all())
    assert torch.equal(prob.diagonal(), torch.zeros(4))


def test_all_pairs_layout():
    assert all_pairs_edge_index(3, torch.device("cpu")).tolist() == [
        [1, 2, 0, 2, 0, 1],
        [0, 0, 1, 1, 2, 2],
    ]


def test_sampled_frequencies_match_probabilities():
    # 2000 independent draws per pair: the frequency's standard error is <= 0.5/sqrt(2000)
    # = 0.0112; a 0.056 tolerance is 5 standard errors for every one of the 240 pairs.
    torch.manual_seed(0)
    graph = PoissonGraph(alpha=1.4, beta=0.1).train()
    x = torch.randn(16, 8)
    prob = graph.probabilities(x).detach()
    counts = torch.zeros(16, 16)
    with torch.no_grad():
        for _ in range(2000):
            counts += graph(x).adjacency
    assert float((counts / 2000 - prob).abs().max()) < 0.056
    assert torch.equal(counts.diagonal(), torch.zeros(16))


def test_edge_weight_carries_sampled_values_and_pairs_layout():
    graph = PoissonGraph().train()
    x = torch.randn(6, 4)
    out = graph(x)
    assert out.edge_index.shape == (2, 30)
    assert set(out.edge_weight.detach().unique().tolist()) <= {0.0, 1.0}
    j, i = out.edge_index
    assert torch.equal(out.edge_weight.detach(), out.adjacency[i, j])
    sampled = out.sampled_edge_index()
    assert sampled.size(1) == int(out.adjacency.sum())


def test_straight_through_gradient_reaches_every_pair_and_alpha_beta():
    torch.manual_seed(0)
    graph = PoissonGraph(alpha=1.0, beta=0.0).train()
    x = torch.randn(5, 3)
    out = graph(x)
    out.prob.retain_grad()
    weights = torch.randn_like(out.edge_weight)
    (out.edge_weight * weights).sum().backward()
    j, i = out.edge_index
    # dLoss/dP_ij == dLoss/dA_ij for every pair, drawn or not (Eq. 14).
    assert torch.allclose(out.prob.grad[i, j], weights)
    unsampled = out.adjacency[i, j] == 0
    assert bool(unsampled.any())
    assert bool((out.prob.grad[i, j][unsampled] != 0).all())
    assert graph.alpha.grad is not None and float(graph.alpha.grad) != 0.0
    assert graph.beta.grad is not None and float(graph.beta.grad) != 0.0


def test_expected_graph_is_deterministic_and_shared_threshold_option():
    graph = PoissonGraph().eval()
    x = torch.randn(7, 4)
    a, b = graph(x), graph(x)
    assert torch.equal(a.edge_weight, b.edge_weight)
    assert torch.allclose(a.adjacency, graph.probabilities(x))
    torch.manual_seed(3)
    shared = PoissonGraph(sampling="shared_threshold").train()(x)
    prob = shared.prob.detach()
    linked = shared.adjacency.bool()
    # One threshold: every linked pair is at least as likely as every unlinked off-diagonal one.
    off = ~torch.eye(7, dtype=torch.bool)
    assert bool(linked.any()) and bool((~linked & off).any())
    assert float(prob[linked].min()) >= float(prob[~linked & off].max())


def test_symmetric_option_and_errors():
    out = PoissonGraph(symmetric=True).train()(torch.randn(9, 4))
    assert torch.equal(out.adjacency, out.adjacency.t())
    with pytest.raises(ValueError, match="unknown sampling 'gumbel'"):
        PoissonGraph(sampling="gumbel")
    with pytest.raises(ValueError, match=r"shape \[B, F\], got \(2, 3, 4\)"):
        PoissonGraph()(torch.randn(2, 3, 4))
    assert str(PoissonGraph()) == "PoissonGraph(alpha=1.4, beta=0, sampling=independent)"
