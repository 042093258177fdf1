import json

import pytest
import torch
from _engine_tiny import BlobImages, full_and_resumed, tiny_config

from pyg_fer.engine import coordinate_descent_step, load_model, train
from pyg_fer.engine.agfn import (
    GraphParamModel,
    SwitchableGraphModel,
    check_agfn_model,
    set_agfn_phase,
    split_parameters,
)
from pyg_fer.engine.config import AGFNConfig
from pyg_fer.engine.trainer import compute_loss
from pyg_fer.models import create_model


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _moved(before, after):
    return {n for n in before if not torch.equal(before[n], after[n])}


@pytest.mark.parametrize("graph_step", ["fresh", "shared"])
def test_alpha_beta_move_only_in_the_graph_step_and_w_only_in_the_network_step(graph_step):
    torch.manual_seed(0)
    model = create_model("_tiny_test_agfn", num_classes=4).train()
    opt_net = torch.optim.SGD(model.network_parameters(), lr=0.1)
    opt_graph = torch.optim.SGD(model.graph_parameters(), lr=0.1)
    snaps = []
    opt_net.register_step_post_hook(lambda *a: snaps.append(("net", _snapshot(model))))
    opt_graph.register_step_post_hook(lambda *a: snaps.append(("graph", _snapshot(model))))
    data = BlobImages(16, seed=0)
    before = _snapshot(model)
    coordinate_descent_step(model, data.images, data.targets, opt_net, opt_graph,
                            lambda out, y: compute_loss(out, y, "mse"), graph_step=graph_step)
    assert [s[0] for s in snaps] == ["net", "graph"]
    after_net, after_graph = snaps[0][1], snaps[1][1]
    # every W with a gradient moved (fc1.bias feeds a BatchNorm: zero gradient), α and β did not
    network = {n for n in before if n not in ("alpha", "beta", "fc1.bias")}
    assert _moved(before, after_net) == network
    assert _moved(after_net, after_graph) == {"alpha", "beta"}  # only α and β moved


def test_fresh_graph_step_uses_the_updated_weights_and_keeps_bn_statistics():
    torch.manual_seed(0)
    model = create_model("_tiny_test_agfn", num_classes=4).train()
    ref = create_model("_tiny_test_agfn", num_classes=4).train()
    ref.load_state_dict(model.state_dict())
    data = BlobImages(16, seed=0)
    loss = lambda out, y: compute_loss(out, y, "ce")  # noqa: E731
    opt_net = torch.optim.SGD(model.network_parameters(), lr=0.1)
    opt_graph = torch.optim.SGD(model.graph_parameters(), lr=0.1)
    coordinate_descent_step(model, data.images, data.targets, opt_net, opt_graph, loss)
    # reference: a network step, then the gradient of α, β at the updated W
    r_net = torch.optim.SGD(ref.network_parameters(), lr=0.1)
    loss(ref(data.images), data.targets).backward()
    r_net.step()
    bn_after_one_pass = ref.bn.running_mean.clone()
    ref.zero_grad()
    with torch.no_grad():
        state = {k: v.clone() for k, v in ref.state_dict().items()}
    loss(ref(data.images), data.targets).backward()
    expected_alpha = state["alpha"] - 0.1 * ref.alpha.grad
    torch.testing.assert_close(model.alpha.detach(), expected_alpha)
    torch.testing.assert_close(model.bn.running_mean, bn_after_one_pass)


def test_agfn_training_mode_with_pretraining_epochs(tmp_path):
    tr, ev = BlobImages(96, seed=1), BlobImages(40, seed=2)
    cfg = tiny_config(tmp_path, model={"name": "_tiny_test_agfn"},
                      train={"epochs": 3, "label_smoothing": 0.0},
                      agfn={"enabled": True, "pretrain_epochs": 1, "graph_lr": 0.05,
                            "loss": "mse"})
    seen = {}

    def record(epoch, model, rec):
        seen[epoch] = (model.agfn_enabled, model.alpha.item(), model.beta.item())

    train(cfg, train_dataset=tr, eval_dataset=ev, on_epoch_end=record)
    init = create_model("_tiny_test_agfn")
    assert seen[1] == (False, init.alpha.item(), init.beta.item())  # untouched in pre-training
    assert seen[2][0] and seen[2][1:] != seen[1][1:]  # AGFN inserted: α, β learn
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["agfn"] for x in lines] == [False, True, True]


@pytest.mark.parametrize("graph_optimizer", ["sgd", "adam"])
def test_an_agfn_run_resumes_bit_for_bit(tmp_path, graph_optimizer):
    # killed in the AGFN phase: the network's and the graph optimiser's states (Adam's
    # moments for α, β), the schedule and the RNG come back exactly
    cfg = tiny_config(tmp_path, model={"name": "_tiny_test_agfn"},
                      train={"epochs": 3, "label_smoothing": 0.0},
                      agfn={"enabled": True, "pretrain_epochs": 1, "graph_lr": 0.05,
                            "graph_optimizer": graph_optimizer, "loss": "mse"})
    full_and_resumed(tmp_path, cfg, BlobImages(64, seed=1), BlobImages(32, seed=2),
                     kill_after=2)


def test_a_run_that_never_switches_agfn_on_says_so(tmp_path):
    tr, ev = BlobImages(32, seed=1), BlobImages(16, seed=2)
    cfg = tiny_config(tmp_path, model={"name": "_tiny_test_agfn"}, train={"epochs": 1},
                      agfn={"enabled": True, "pretrain_epochs": 1})
    with pytest.warns(UserWarning, match=r"agfn.pretrain_epochs \(1\) >= train.epochs \(1\): "
                                         "AGFN is never switched on"):
        train(cfg, train_dataset=tr, eval_dataset=ev)


def test_a_checkpoint_of_a_pretraining_epoch_reloads_with_the_graph_off(tmp_path):
    # the best epoch may be one of the graph-off pre-training epochs: the card says so, and
    # load_model (and so the final report) rebuilds the model that was selected
    tr, ev = BlobImages(96, seed=1), BlobImages(40, seed=2)
    cfg = tiny_config(tmp_path, model={"name": "_tiny_test_agfn"},
                      train={"epochs": 2, "label_smoothing": 0.0},
                      agfn={"enabled": True, "pretrain_epochs": 1, "graph_lr": 0.05})
    out = train(cfg, train_dataset=tr, eval_dataset=ev)
    assert out["best_epoch"] == 1  # (seeded) the graph-off epoch wins here
    run = tmp_path / "run"
    for stem, enabled in (("last", True), ("best", False)):
        card = json.loads((run / f"{stem}.json").read_text())
        assert card["agfn_enabled"] is enabled
        assert load_model(run / f"{stem}.json").agfn_enabled is enabled
    best = json.loads((run / "best.json").read_text())["metrics"]
    assert out["best"]["overall_acc"] == pytest.approx(best["eval_acc"])


def test_agfn_mode_needs_the_parameter_split(tmp_path):
    tr, ev = BlobImages(32, seed=1), BlobImages(16, seed=2)
    with pytest.raises(ValueError, match="no graph_parameters"):
        train(tiny_config(tmp_path, agfn={"enabled": True}), train_dataset=tr, eval_dataset=ev)


class _GraphOnly(torch.nn.Module):
    """Graph parameters but no set_agfn_enabled; network_parameters can be made to miss one."""

    def __init__(self, drop_bias: bool = False):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.alpha = torch.nn.Parameter(torch.ones(()))
        self.drop_bias = drop_bias

    def graph_parameters(self):
        return iter([self.alpha])

    def network_parameters(self):
        return iter([self.lin.weight] if self.drop_bias else [self.lin.weight, self.lin.bias])


def test_agfn_capability_is_a_protocol_and_errors_name_what_is_missing():
    mlp, agfn, graph_only = create_model("_tiny_test_mlp"), create_model("_tiny_test_agfn"), \
        _GraphOnly()
    assert not isinstance(mlp, GraphParamModel)
    assert isinstance(agfn, SwitchableGraphModel)
    assert isinstance(graph_only, GraphParamModel)
    assert not isinstance(graph_only, SwitchableGraphModel)
    check_agfn_model(mlp, AGFNConfig(enabled=False), "_tiny_test_mlp")  # off: nothing asked
    with pytest.raises(ValueError, match="model '_tiny_test_mlp' has no graph_parameters"):
        check_agfn_model(mlp, AGFNConfig(enabled=True), "_tiny_test_mlp")
    check_agfn_model(graph_only, AGFNConfig(enabled=True), "g")
    with pytest.raises(ValueError, match=r"pretrain_epochs > 0 needs model 'g'.*set_agfn_enabled"):
        check_agfn_model(graph_only, AGFNConfig(enabled=True, pretrain_epochs=2), "g")
    net, graph = split_parameters(graph_only)
    assert len(net) == 2 and graph == [graph_only.alpha]
    with pytest.raises(ValueError, match=r"in neither.*\['lin.bias'\]"):
        split_parameters(_GraphOnly(drop_bias=True))


def test_agfn_phase_switches_the_graph_on_after_pretraining():
    model = create_model("_tiny_test_agfn")
    cfg = AGFNConfig(enabled=True, pretrain_epochs=2)
    assert [set_agfn_phase(model, cfg, epoch) for epoch in (1, 2)] == [False, False]
    assert model.agfn_enabled is False
    assert set_agfn_phase(model, cfg, 3) is True and model.agfn_enabled is True
    assert set_agfn_phase(model, AGFNConfig(enabled=False), 3) is False


class _AGFNOnly(torch.nn.Module):
    """AGFN alone (features in, normalised features out), with the coordinate-descent split."""

    def __init__(self, num_samples):
        super().__init__()
        from pyg_fer.nn import AGFN

        self.agfn = AGFN(2, 2, num_samples=num_samples, bank_size=0)

    def graph_parameters(self):
        return self.agfn.graph_parameters()

    def network_parameters(self):
        return self.agfn.network_parameters()

    def forward(self, x, return_samples=False):
        return self.agfn(x, return_samples=return_samples)


_DRAWS = [torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]),
          torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])]


def _eq6(a):
    """D^-1/2 (A + I) D^-1/2 with D_ii = 1 + Σ_j A_ij (Eq. 6), written out."""
    a_tilde = a + torch.eye(len(a))
    d = a_tilde.sum(1).rsqrt()
    return d[:, None] * a_tilde * d[None, :]


@pytest.mark.parametrize("sample_average", ["loss", "output"])
def test_sample_average_gradients_by_hand(monkeypatch, sample_average):
    from pyg_fer.nn import PoissonGraph

    draws = iter(_DRAWS * 2)  # network step, then the graph step's forward
    monkeypatch.setattr(PoissonGraph, "_draw", lambda self, prob: next(draws))
    torch.manual_seed(0)
    model = _AGFNOnly(num_samples=2).train()
    with torch.no_grad():
        model.agfn.gcn.bias.copy_(torch.tensor([0.3, -0.2]))
    w = model.agfn.gcn.lin.weight.detach().clone()
    b = model.agfn.gcn.bias.detach().clone()
    x = torch.tensor([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])

    def loss_fn(out, target):  # squared error summed over features, mean over the batch
        return (out - target).pow(2).sum(1).mean()

    grads = {}
    opt_net = torch.optim.SGD(model.network_parameters(), lr=0.1)
    opt_graph = torch.optim.SGD(model.graph_parameters(), lr=0.1)
    opt_net.register_step_pre_hook(lambda *a: grads.update(
        w=model.agfn.gcn.lin.weight.grad.clone(), b=model.agfn.gcn.bias.grad.clone()))
    _, loss = coordinate_descent_step(model, x, y, opt_net, opt_graph, loss_fn,
                                      sample_average=sample_average)
    # by hand: out_s = N_s X Wᵀ + b with N_s = Eq. 6 of draw s; B = 3 rows, S = 2 draws
    outs = [_eq6(a) @ x @ w.t() + b for a in _DRAWS]
    mixed = [_eq6(a) @ x for a in _DRAWS]
    if sample_average == "loss":  # Eq. 10: (1/S) Σ_s ∇ℓ(A_s)
        hand_loss = sum(((o - y) ** 2).sum() / 3 for o in outs) / 2
        hand_w = sum(2 / 3 * (o - y).t() @ m for o, m in zip(outs, mixed, strict=True)) / 2
        hand_b = sum(2 / 3 * (o - y).sum(0) for o in outs) / 2
    else:  # ∇ℓ((1/S) Σ_s out_s)
        mean_out = sum(outs) / 2
        hand_loss = ((mean_out - y) ** 2).sum() / 3
        hand_w = 2 / 3 * (mean_out - y).t() @ (sum(mixed) / 2)
        hand_b = 2 / 3 * (mean_out - y).sum(0)
    torch.testing.assert_close(loss, hand_loss)
    torch.testing.assert_close(grads["w"], hand_w)
    torch.testing.assert_close(grads["b"], hand_b)


def test_sample_average_choices(tmp_path):
    from pyg_fer.engine.config import load_config

    cfg = load_config(tiny_config(tmp_path))
    assert cfg.agfn.sample_average == "loss" and cfg.agfn.global_graph is True
    with pytest.raises(ValueError, match="'agfn.sample_average' is 'draws'"):
        load_config(tiny_config(tmp_path, agfn={"sample_average": "draws"}))
    model = _AGFNOnly(2)
    with pytest.raises(ValueError, match="unknown sample_average 'draws'"):
        coordinate_descent_step(model, torch.randn(3, 2), torch.randn(3, 2),
                                torch.optim.SGD(model.network_parameters(), lr=0.1),
                                torch.optim.SGD(model.graph_parameters(), lr=0.1),
                                lambda o, t: (o - t).pow(2).mean(), sample_average="draws")
