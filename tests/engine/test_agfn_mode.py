import json

import pytest
import torch
from _engine_tiny import BlobImages, tiny_config

from pyg_fer.engine import coordinate_descent_step, train
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
