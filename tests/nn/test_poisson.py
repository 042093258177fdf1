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


def test_all_pairs_edge_index_is_the_callers_to_change():
    first = all_pairs_edge_index(4, torch.device("cpu"))
    first.add_(100)  # e.g. offsetting to stack graphs
    assert int(all_pairs_edge_index(4, torch.device("cpu")).max()) == 3
    graph = PoissonGraph()(torch.randn(4, 8))
    graph.edge_index.add_(100)
    assert int(PoissonGraph()(torch.randn(4, 8)).edge_index.max()) == 3


def test_no_samples_is_a_clear_error():
    with pytest.raises(ValueError, match=r"at least one sample, got features of shape \(0, 8\)"):
        PoissonGraph().train()(torch.randn(0, 8))


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


def test_prob_option_straight_through_gradient_reaches_every_pair_and_alpha_beta():
    # straight_through="prob" with edge_grad_to_features=True: the estimator before issue 10.
    torch.manual_seed(0)
    graph = PoissonGraph(alpha=1.0, beta=0.0, straight_through="prob",
                         edge_grad_to_features=True).train()
    x = torch.randn(5, 3)
    out = graph(x)
    out.prob.retain_grad()
    weights = torch.randn_like(out.edge_weight)
    (out.edge_weight * weights).sum().backward()
    j, i = out.edge_index
    # dLoss/dP_ij == dLoss/dA_ij for every pair, drawn or not.
    assert torch.allclose(out.prob.grad[i, j], weights)
    unsampled = out.adjacency[i, j] == 0
    assert bool(unsampled.any())
    assert bool((out.prob.grad[i, j][unsampled] != 0).all())
    assert graph.alpha.grad is not None and float(graph.alpha.grad) != 0.0
    assert graph.beta.grad is not None and float(graph.beta.grad) != 0.0


def test_rate_straight_through_is_eq_11_mean_over_pairs_for_every_pair():
    # Loss = sum_ij g_ij A_ij, so dL/dA_ij = g_ij; Eq. 11/14: dL/dα = mean over the N² pairs of
    # cos_ij g_ij, dL/dβ = mean of g_ij, drawn or not, clamped rate or not.
    torch.manual_seed(0)
    graph = PoissonGraph(alpha=1.0, beta=-0.3).train()
    x = torch.randn(5, 3)
    out = graph(x)
    g = torch.randn_like(out.edge_weight)
    (out.edge_weight * g).sum().backward()
    j, i = out.edge_index
    xn = torch.nn.functional.normalize(x, dim=1)
    cos = (xn @ xn.t())[i, j]
    assert bool((cos - 0.3 < 0).any())  # some rates are clamped: they still count
    torch.testing.assert_close(graph.alpha.grad, (cos * g).sum() / 25)
    torch.testing.assert_close(graph.beta.grad, g.sum() / 25)


def _two_node_case(**options):
    """Two nodes, the draw fixed to A_12 = 1 (node 1 aggregates node 2), A_21 = 0, a GCN with
    W = I and no bias, loss u1·x̂_1 + u2·x̂_2. Returns the autograd gradients of x1, x2, α, β."""
    from pyg_fer.nn import AGFN

    agfn = AGFN(2, 2, alpha=1.4, beta=0.1, **options).train()
    with torch.no_grad():
        agfn.gcn.lin.weight.copy_(torch.eye(2))
        agfn.gcn.bias.zero_()
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    u = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    graph = agfn.graph(x, adjacency=torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    out = agfn.gcn(x, graph.edge_index, graph.edge_weight)
    (u * out).sum().backward()
    return x.grad, float(agfn.graph.alpha.grad), float(agfn.graph.beta.grad)


def _two_node_hand_gradients():
    """The same case by hand. x̂_1 = x1/D1 + a·x2/sqrt(D1·D2), x̂_2 = x2/D2 + b·x1/sqrt(D1·D2)
    with a = A_12, b = A_21, D1 = 1 + a, D2 = 1 + b (Eq. 6), at a = 1, b = 0."""
    r2 = math.sqrt(2.0)
    x1, x2 = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    u1, u2 = torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.5])
    # dL/da = u1·(−x1/D1² + x2·(D1^−½ − a/2·D1^−3/2)·D2^−½) = u1·(−x1/4 + 3·x2/(4√2))
    g_a = float(u1 @ (-x1 / 4 + 3 * x2 / (4 * r2)))
    # dL/db = u1·(−a/2·x2·D1^−½·D2^−3/2) + u2·(−x2/D2² + x1·D2^−½·D1^−½)
    g_b = float(u1 @ (-x2 / (2 * r2)) + u2 @ (-x2 + x1 / r2))
    # with A held fixed: dL/dx1 = u1/D1 + u2·b/sqrt(D1·D2), dL/dx2 = u1·a/sqrt(D1·D2) + u2/D2
    fixed = torch.stack([u1 / 2, u1 / r2 + u2])
    cos = 1 / r2
    # d cos / d x1 = x2/(|x1||x2|) − cos·x1/|x1|², d cos / d x2 = x1/(|x1||x2|) − cos·x2/|x2|²
    dcos = torch.stack([x2 / r2 - cos * x1, x1 / r2 - cos * x2 / 2])
    return g_a, g_b, fixed, cos, dcos


def test_default_gradients_are_eq_10_11_14_by_hand():
    gx, ga, gb = _two_node_case()
    g_a, g_b, fixed, cos, _ = _two_node_hand_gradients()
    # Eq. 10: features get the gradient of g(X, W, A) with the draw A fixed, nothing through P
    torch.testing.assert_close(gx, fixed)
    # Eq. 11 with Eq. 14's dA/dλ = 1: mean over the N² = 4 pairs, ∇_α λ = cos, ∇_β λ = 1
    assert ga == pytest.approx((cos * g_a + cos * g_b) / 4, abs=1e-6)
    assert gb == pytest.approx((g_a + g_b) / 4, abs=1e-6)


def test_prob_option_gradients_by_hand():
    g_a, g_b, fixed, cos, dcos = _two_node_hand_gradients()
    lam = 1.4 * cos + 0.1
    dp_dlam = math.exp(-lam)  # P = 1 − e^{−λ}, λ > 0 here
    # straight_through="prob": dA/dP = 1, summed over the two pairs
    gx, ga, gb = _two_node_case(straight_through="prob")
    assert ga == pytest.approx((g_a + g_b) * dp_dlam * cos, abs=1e-6)
    assert gb == pytest.approx((g_a + g_b) * dp_dlam, abs=1e-6)
    torch.testing.assert_close(gx, fixed)  # features still see the draw as fixed
    # edge_grad_to_features=True adds Σ_pairs dL/dA · dP/dλ · α · d cos/dx to the features
    gx, ga2, gb2 = _two_node_case(straight_through="prob", edge_grad_to_features=True)
    torch.testing.assert_close(gx, fixed + (g_a + g_b) * dp_dlam * 1.4 * dcos)
    assert (ga2, gb2) == pytest.approx((ga, gb), abs=1e-7)
    # with the paper's rate estimator: dA/dλ = 1, so α · d cos/dx per pair
    gx, ga3, _ = _two_node_case(edge_grad_to_features=True)
    torch.testing.assert_close(gx, fixed + (g_a + g_b) * 1.4 * dcos)
    assert ga3 == pytest.approx((cos * g_a + cos * g_b) / 4, abs=1e-6)


def test_given_adjacency_is_used_and_checked():
    graph = PoissonGraph().train()
    x = torch.randn(3, 4)
    a = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert torch.equal(graph(x, adjacency=a).adjacency, a)
    with pytest.raises(ValueError, match=r"adjacency of shape \(2, 2\) given for 3 nodes"):
        graph(x, adjacency=torch.zeros(2, 2))


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
    with pytest.raises(ValueError, match="unknown straight_through 'logit'"):
        PoissonGraph(straight_through="logit")
    with pytest.raises(ValueError, match=r"shape \[B, F\], got \(2, 3, 4\)"):
        PoissonGraph()(torch.randn(2, 3, 4))
    assert str(PoissonGraph()) == "PoissonGraph(alpha=1.4, beta=0, sampling=independent)"
    assert str(PoissonGraph(straight_through="prob", edge_grad_to_features=True)) == (
        "PoissonGraph(alpha=1.4, beta=0, sampling=independent, straight_through=prob, "
        "edge_grad_to_features=True)")


def test_probabilities_between_two_sets_are_unmasked_cosine_rates():
    # P between the rows of x and of another set y: no self-pair mask, y normalised as x is.
    graph = PoissonGraph(alpha=2.0, beta=-0.5)
    x = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    y = torch.tensor([[2.0, 0.0], [0.0, 5.0], [4.0, 4.0]])
    prob = graph.probabilities(x, y).detach()
    assert prob.shape == (2, 3)
    cos = torch.tensor([[1.0, 0.0, 2**-0.5], [0.0, 1.0, 2**-0.5]])
    expected = 1 - torch.exp(-(2.0 * cos - 0.5).clamp(min=0))
    torch.testing.assert_close(prob, expected)
    assert float(prob[0, 0]) == pytest.approx(1 - math.exp(-1.5), abs=1e-6)  # not masked


def test_probabilities_checks_its_input():
    graph = PoissonGraph()
    with pytest.raises(ValueError, match=r"shape \[B, F\], got \(2, 3, 4\)"):
        graph.probabilities(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"at least one sample, got features of shape \(0, 8\)"):
        graph.probabilities(torch.randn(0, 8))


def test_explicit_sample_overrides_the_mode():
    torch.manual_seed(0)
    x = torch.randn(8, 4)
    drawn = PoissonGraph().eval()(x, sample=True)
    assert set(drawn.adjacency.unique().tolist()) <= {0.0, 1.0}
    expected = PoissonGraph().train()(x, sample=False)
    torch.testing.assert_close(expected.adjacency, expected.prob.detach())
    assert bool(((expected.adjacency > 0) & (expected.adjacency < 1)).any())


def test_expected_graph_is_differentiable_in_features_and_alpha_beta():
    # A = P is a smooth function of x, α and β: its autograd gradient is the true one.
    graph = PoissonGraph(alpha=1.4, beta=0.1).double().eval()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(12, dtype=torch.float64)

    def loss(feats):
        return (graph(feats).edge_weight * g).sum()

    assert torch.autograd.gradcheck(loss, (x,))
    loss(x).backward()
    assert float(graph.alpha.grad) != 0.0 and float(graph.beta.grad) != 0.0
