import pytest
import torch

from pyg_fer.nn import AGFN


def trained_bank_agfn(bank_size=7, seen=20, seed=0):
    """An AGFN whose bank has seen ``seen`` training rows."""
    torch.manual_seed(seed)
    agfn = AGFN(6, 4, alpha=2.0, beta=0.3, eval_graph="bank", bank_size=bank_size).train()
    feats = torch.randn(seen, 6)
    for chunk in feats.split(5):
        agfn(chunk)
    return agfn.eval(), feats


def expected_graph_at_node_0(agfn, x_i, bank):
    """GCNConv on the expected graph over [x_i; bank] (every pair, weight P), node 0."""
    nodes = torch.cat([x_i[None], bank])
    graph = agfn.graph(nodes, sample=False)
    return agfn.gcn(nodes, graph.edge_index, graph.edge_weight)[0]


def dense_bank_formula(agfn, x, bank):
    """The docstring's formula written out with loops."""
    w, b = agfn.gcn.lin.weight.t(), agfn.gcn.bias
    xn = torch.nn.functional.normalize(x, dim=1)
    zn = torch.nn.functional.normalize(bank, dim=1)
    alpha, beta = agfn.graph.alpha, agfn.graph.beta

    def prob(u, v):
        return 1 - torch.exp(-torch.clamp(alpha * (u @ v) + beta, min=0))

    rows = []
    for i in range(len(x)):
        p = torch.stack([prob(xn[i], zn[m]) for m in range(len(bank))])
        d_i = 1 + p.sum()
        out = x[i] @ w / d_i + b
        for m in range(len(bank)):
            d_m = 1 + p[m] + sum(prob(zn[m], zn[k]) for k in range(len(bank)) if k != m)
            out = out + p[m] / torch.sqrt(d_i * d_m) * (bank[m] @ w)
        rows.append(out)
    return torch.stack(rows)


def test_bank_is_a_fifo_of_the_last_training_features():
    agfn, feats = trained_bank_agfn(bank_size=7, seen=20)
    assert int(agfn.bank_count) == 7
    # Rows 13..19 are the last seven; slot = arrival index mod 7.
    expected = torch.empty(7, 6)
    for t in range(13, 20):
        expected[t % 7] = feats[t]
    assert torch.equal(agfn.bank, expected)
    # A partial bank holds its rows in arrival order; eval passes do not write.
    agfn2, feats2 = trained_bank_agfn(bank_size=7, seen=5)
    agfn2(torch.randn(3, 6))
    assert int(agfn2.bank_count) == 5 and torch.equal(agfn2.bank_features(), feats2)


def test_bank_output_equals_dense_formula_and_gcnconv_on_the_joint_graph():
    agfn, _ = trained_bank_agfn()
    x = torch.randn(4, 6)
    with torch.no_grad():
        out = agfn(x)
        dense = dense_bank_formula(agfn, x, agfn.bank)
        joint = torch.stack([expected_graph_at_node_0(agfn, x[i], agfn.bank) for i in range(4)])
    assert torch.allclose(out, dense, atol=1e-5)
    assert torch.allclose(out, joint, atol=1e-5)


def test_bank_eval_is_deterministic_and_independent_of_the_batch():
    agfn, _ = trained_bank_agfn()
    x = torch.randn(12, 6)
    with torch.no_grad():
        full = agfn(x)
        assert torch.equal(full, agfn(x))
        alone = torch.cat([agfn(x[i : i + 1]) for i in range(12)])
        perm = torch.randperm(12)
        permuted = agfn(x[perm])
        with_others = agfn(torch.cat([x[:3], 10 * torch.randn(9, 6)]))[:3]
    assert torch.allclose(full, alone, atol=1e-5)
    assert torch.allclose(full[perm], permuted, atol=1e-5)
    assert torch.allclose(full[:3], with_others, atol=1e-5)


def test_empty_bank_falls_back_to_identity():
    agfn = AGFN(6, 4, eval_graph="bank", bank_size=8).eval()
    x = torch.randn(5, 6)
    identity = x @ agfn.gcn.lin.weight.t() + agfn.gcn.bias
    assert int(agfn.bank_count) == 0
    assert torch.allclose(agfn(x), identity, atol=1e-6)
    # After one training pass the bank is used, and differs from the identity.
    agfn.train()(torch.randn(3, 6))
    agfn.eval()
    assert not torch.allclose(agfn(x), identity, atol=1e-4)
    agfn.reset_bank()
    assert torch.allclose(agfn(x), identity, atol=1e-6)


def test_bank_survives_state_dict_round_trip():
    agfn, _ = trained_bank_agfn(seen=9)
    state = agfn.state_dict()
    assert {"bank", "bank_ptr", "bank_count"} <= set(state)
    fresh = AGFN(6, 4, eval_graph="bank", bank_size=7).eval()
    fresh.load_state_dict(state)
    x = torch.randn(5, 6)
    assert int(fresh.bank_count) == 7 and int(fresh.bank_ptr) == 2
    assert torch.equal(fresh(x), agfn(x))


def test_alpha_beta_get_gradient_in_bank_mode():
    agfn, _ = trained_bank_agfn()
    agfn(torch.randn(4, 6)).sum().backward()
    assert agfn.graph.alpha.grad is not None and float(agfn.graph.alpha.grad.abs()) > 0
    assert agfn.graph.beta.grad is not None and float(agfn.graph.beta.grad.abs()) > 0


def test_bank_training_forward_is_unchanged():
    torch.manual_seed(3)
    x = torch.randn(8, 6)
    a = AGFN(6, 4, eval_graph="expected").train()
    b = AGFN(6, 4, eval_graph="bank").train()
    b.load_state_dict(a.state_dict())
    torch.manual_seed(4)
    out_a = a(x)
    torch.manual_seed(4)
    out_b = b(x)
    assert torch.equal(out_a, out_b)


def test_bank_errors_and_repr():
    with pytest.raises(ValueError, match="bank_size must be >= 0.*got -1"):
        AGFN(4, 4, bank_size=-1)
    with pytest.raises(ValueError, match=r"eval_graph='bank' needs bank_size > 0"):
        AGFN(4, 4, eval_graph="bank", bank_size=0)
    with pytest.raises(ValueError, match=r"eval_graph='bank' needs bank_size > 0"):
        AGFN(4, 4, bank_size=0).eval_graph = "bank"  # switched later: checked the same
    assert str(AGFN(8, 8, eval_graph="bank", bank_size=63)) == (
        "AGFN(8, 8, num_samples=1, eval_graph=bank, bank_size=63)"
    )
    # bank_size=0 keeps no features and is a no-op in training.
    agfn = AGFN(4, 4, bank_size=0).train()
    agfn(torch.randn(3, 4))
    assert agfn.bank.shape == (0, 4)


def test_partial_bank_uses_only_its_filled_rows_without_reading_the_count():
    """A bank that has seen fewer rows than it holds: the unfilled rows (here set to large
    junk) take no part, the count stays a device tensor (no host read in the forward)."""
    agfn, feats = trained_bank_agfn(bank_size=7, seen=4)
    with torch.no_grad():
        agfn.bank[4:] = 50 * torch.randn(3, 6)
    x = torch.randn(5, 6)
    with torch.no_grad():
        out = agfn(x)
        dense = dense_bank_formula(agfn, x, feats)
    assert torch.allclose(out, dense, atol=1e-5)

    class NoHostRead(torch.Tensor):
        def __int__(self):
            raise AssertionError("bank_count read on the host")

        __bool__ = __index__ = __int__

    agfn.bank_count = agfn.bank_count.as_subclass(NoHostRead)
    with torch.no_grad():
        assert torch.allclose(agfn(x).as_subclass(torch.Tensor), out, atol=1e-6)


def test_a_batch_larger_than_the_bank_keeps_its_last_rows():
    agfn = AGFN(6, 4, eval_graph="bank", bank_size=3).train()
    x = torch.randn(5, 6)
    agfn(x)
    assert int(agfn.bank_count) == 3 and int(agfn.bank_ptr) == 0
    assert torch.equal(agfn.bank, x[2:])


def test_bank_output_adds_the_bias():
    agfn, _ = trained_bank_agfn()
    with torch.no_grad():
        agfn.gcn.bias.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
        x = torch.randn(3, 6)
        torch.testing.assert_close(agfn(x), dense_bank_formula(agfn, x, agfn.bank))
