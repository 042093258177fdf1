import pytest
import torch

import pyg_fer

IMG = 64


def test_parameter_split_and_toggle():
    model = pyg_fer.create_model("agfn_resnet18", feature_dim=16)
    graph = list(model.graph_parameters())
    assert graph == [model.graph_norm.graph.alpha, model.graph_norm.graph.beta]
    network_ids = {id(p) for p in model.network_parameters()}
    assert network_ids.isdisjoint(id(p) for p in graph)
    assert len(network_ids) + 2 == len(list(model.parameters()))
    model.set_agfn_enabled(False)
    assert model.graph_norm.use_graph is False
    model.set_agfn_enabled(True)
    assert model.graph_norm.use_graph is True


def test_baseline_gcn_has_no_graph_parameters():
    model = pyg_fer.create_model("baseline_gcn_resnet18", feature_dim=16)
    assert list(model.graph_parameters()) == []
    assert len(list(model.network_parameters())) == len(list(model.parameters()))


@pytest.mark.parametrize("eval_graph", ["identity", "bank"])
def test_identity_and_bank_eval_graphs_remove_the_batch_dependence(eval_graph):
    torch.manual_seed(0)
    model = pyg_fer.create_model("agfn_resnet18", feature_dim=16, eval_graph=eval_graph,
                                 bank_size=5)
    with torch.no_grad():
        model.train()(torch.randn(4, 3, IMG, IMG))  # fills the bank
    model.eval()
    assert int(model.graph_norm.bank_count) == 4
    images = torch.randn(6, 3, IMG, IMG)
    with torch.no_grad():
        batch = model(images)
        alone = torch.cat([model(images[i : i + 1]) for i in range(6)])
    assert torch.allclose(batch, alone, atol=1e-4)


def test_expected_eval_graph_depends_on_the_batch_but_is_deterministic():
    torch.manual_seed(0)
    model = pyg_fer.create_model("agfn_resnet18", feature_dim=16, eval_graph="expected").eval()
    images = torch.randn(6, 3, IMG, IMG)
    with torch.no_grad():
        a, b = model(images), model(images)
        first_three = model(images[:3])
    assert torch.equal(a, b)
    assert not torch.allclose(a[:3], first_three, atol=1e-4)


def test_face2nodes_agfn_uses_the_face2nodes_graph_representation():
    model = pyg_fer.create_model(
        "face2nodes_agfn", embed_dim=32, depth=2, grid_size=4, k=4, feature_dim=16
    ).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, IMG, IMG))
    assert out.shape == (3, 7)
    assert len(model.trunk.graphs) == 2 and model.trunk.graphs[0].shape == (2, 3 * 16 * 4)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        pyg_fer.create_model("agfn_resnet18", backbone="vgg")
    with pytest.raises(ValueError, match=r"unexpected keyword arguments \['depth'\]"):
        pyg_fer.create_model("agfn_resnet18", depth=3)
    with pytest.raises(ValueError, match="unknown feature_activation 'tanh'"):
        pyg_fer.create_model("agfn_resnet18", feature_activation="tanh")


@pytest.mark.parametrize("activation", ["relu", "none"])
def test_feature_activation_sets_the_sign_of_the_emotional_features(activation):
    torch.manual_seed(0)
    model = pyg_fer.create_model("agfn_resnet18", feature_dim=16,
                                 feature_activation=activation).train()
    feats = model.extract(torch.randn(8, 3, IMG, IMG))
    assert feats.shape == (8, 16)
    if activation == "relu":
        assert feats.min() >= 0
    else:  # BatchNorm output in training mode: zero mean per channel over the batch
        assert feats.min() < 0
        torch.testing.assert_close(feats.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    rebuilt = pyg_fer.create_model("agfn_resnet18", **model.cfg["kwargs"])
    assert isinstance(rebuilt.project[2], type(model.project[2]))


def test_default_eval_graph_is_identity():
    model = pyg_fer.create_model("agfn_resnet18", feature_dim=16)
    assert model.graph_norm.eval_graph == "identity"


def test_return_samples_gives_one_logit_block_per_draw():
    torch.manual_seed(0)
    images = torch.randn(4, 3, IMG, IMG)
    model = pyg_fer.create_model("agfn_resnet18", feature_dim=16, num_samples=3).train()
    torch.manual_seed(1)
    stacked = model(images, return_samples=True)
    torch.manual_seed(1)
    averaged = model(images)
    assert stacked.shape == (3, 4, 7)
    # the plain forward averages the draws' features before the (affine) classifier
    torch.testing.assert_close(stacked.mean(0), averaged)
    assert model.eval()(images, return_samples=True).shape == (1, 4, 7)
    baseline = pyg_fer.create_model("baseline_gcn_resnet18", feature_dim=16).train()
    assert baseline(images, return_samples=True).shape == (1, 4, 7)


def test_gradient_options_reach_the_sampler():
    model = pyg_fer.create_model("agfn_resnet18", feature_dim=16, straight_through="prob",
                                 edge_grad_to_features=True, global_graph=True)
    graph = model.graph_norm.graph
    assert graph.straight_through == "prob" and graph.edge_grad_to_features
    assert model.graph_norm.global_graph
    model.set_global_graph(False)
    assert not model.graph_norm.global_graph
    default = pyg_fer.create_model("agfn_resnet18", feature_dim=16).graph_norm
    assert (default.graph.straight_through, default.graph.edge_grad_to_features,
            default.global_graph) == ("rate", False, False)


@pytest.mark.parametrize("name", ["agfn_resnet18", "baseline_gcn_resnet18"])
def test_training_batch_of_one_says_why_and_eval_predicts_one_image(name):
    model = pyg_fer.create_model(name, feature_dim=16).train()
    image = torch.randn(1, 3, IMG, IMG)
    with pytest.raises(ValueError, match=r"training batch of 1 image.*model\.eval\(\)"):
        model(image)
    with torch.no_grad():
        assert model.eval()(image).shape == (1, 7)
