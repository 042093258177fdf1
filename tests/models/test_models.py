"""Registry-driven tests: every registered model, on a small variant unless marked slow."""

import json

import pytest
import torch

import pyg_fer
from pyg_fer.models.face2nodes import Face2Nodes

# Small variants keep the suite fast; models not listed get SMALL (the graph-model knobs).
SMALL = dict(embed_dim=64, depth=2, grid_size=4, k=4)
SMALL_KWARGS = {
    "resnet18_fer": {},
    "agfn_resnet18": {"feature_dim": 32},
    "baseline_gcn_resnet18": {"feature_dim": 32},
}
IMG = 64


def small(name, **kwargs):
    return pyg_fer.create_model(name, **dict(SMALL_KWARGS.get(name, SMALL), **kwargs))


def test_registry_lists_the_issue_models():
    names = pyg_fer.list_models()
    for name in ["face2nodes", "face2nodes_mr", "face2nodes_stem", "vig_ti_fer", "resnet18_fer",
                 "agfn_resnet18", "baseline_gcn_resnet18", "face2nodes_agfn"]:
        assert name in names
    assert pyg_fer.list_models("face2nodes*") == [
        "face2nodes", "face2nodes_agfn", "face2nodes_mr", "face2nodes_stem"
    ]
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        pyg_fer.create_model("nope")


@pytest.mark.parametrize("name", pyg_fer.list_models())
def test_forward_train_gradients(name):
    model = small(name, num_classes=5).train()
    # Batch of 4: with 2, BatchNorm + ReLU make two samples' features exactly orthogonal, and
    # a batch-level graph's clamped Poisson rate then sits at its kink (zero gradient).
    out = model(torch.randn(4, 3, IMG, IMG))
    assert out.shape == (4, 5) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []


@pytest.mark.parametrize("name", pyg_fer.list_models())
def test_eval_on_a_batch_of_no_images_gives_no_rows(name):
    # e.g. a video frame in which no face was found
    with torch.no_grad():
        assert small(name).eval()(torch.randn(0, 3, IMG, IMG)).shape == (0, 7)


@pytest.mark.parametrize("name", pyg_fer.list_models())
def test_eval_batch_of_one_and_determinism(name):
    model = small(name).eval()
    x = torch.randn(1, 3, IMG, IMG)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert a.shape == (1, 7) and torch.equal(a, b)
    feats = model.forward_features(x)
    # node features [B, N, D], feature maps [B, C, H, W], or batch-level vectors [B, F]
    assert feats.dim() in (2, 3, 4) and feats.shape[0] == 1


@pytest.mark.parametrize("name", pyg_fer.list_models())
def test_cfg_rebuilds_model(name):
    model = small(name, num_classes=3, class_names=["a", "b", "c"])
    cfg = json.loads(json.dumps(model.cfg))  # what a checkpoint stores
    assert cfg["name"] == name and cfg["num_classes"] == 3
    assert cfg["class_names"] == ["a", "b", "c"] and cfg["input_size"][0] == 3
    assert len(cfg["mean"]) == 3 and len(cfg["std"]) == 3
    # the architecture and the data metadata are kept apart
    assert not {"class_names", "mean", "std"} & set(cfg["kwargs"])
    rebuilt = pyg_fer.create_model(cfg["name"], **cfg["kwargs"])
    rebuilt.load_state_dict(model.state_dict())  # same architecture, strict
    assert rebuilt.cfg["kwargs"] == model.cfg["kwargs"]
    rebuilt = pyg_fer.create_model(cfg["name"], **cfg["kwargs"], class_names=cfg["class_names"],
                                   mean=cfg["mean"], std=cfg["std"])
    assert rebuilt.cfg == model.cfg
    with pytest.raises(ValueError, match="class_names has 2 entries"):
        small(name, num_classes=3, class_names=["a", "b"])


def test_mean_and_std_may_be_tensors_or_arrays():
    import numpy as np

    a = pyg_fer.create_model("resnet18_fer", img_size=32, mean=torch.tensor([0.5, 0.4, 0.3]),
                             std=np.array([0.25, 0.2, 0.1]))
    assert a.cfg["mean"] == pytest.approx([0.5, 0.4, 0.3])
    assert a.cfg["std"] == pytest.approx([0.25, 0.2, 0.1])


def test_graph_model_variants_and_graphs():
    model = small("face2nodes", depth=3).eval()
    assert isinstance(model, Face2Nodes) and model.graphs == [None] * 3
    x = torch.randn(2, 3, IMG, IMG)
    feats = model.forward_features(x)
    assert feats.shape == (2, 16, 64)
    assert model.dilations == [1, 1, 1]
    for ei in model.graphs:
        assert ei.shape == (2, 2 * 16 * 4)
    assert isinstance(small("face2nodes_mr").blocks[0].conv, pyg_fer.nn.MRConv)
    assert isinstance(small("face2nodes").blocks[0].conv, pyg_fer.nn.RGConv)
    assert isinstance(small("face2nodes_stem").embed, pyg_fer.nn.StemPatchEmbed)
    edge = small("face2nodes", conv="edge").train()
    edge(x).sum().backward()
    assert all(p.grad is not None for p in edge.parameters())
    with pytest.raises(ValueError, match="embedder 'vit'"):
        small("face2nodes", embedder="vit")
    with pytest.raises(ValueError, match="dilations"):
        small("face2nodes", dilations=[1])


def test_stochastic_depth_rises_linearly_from_zero_to_the_rate():
    model = small("face2nodes", depth=4, drop_path_rate=0.3)
    for block, p in zip(model.blocks, [0.0, 0.1, 0.2, 0.3], strict=True):
        assert block.drop_path.p == pytest.approx(p) and block.ffn.drop_path.p == block.drop_path.p
    assert small("face2nodes", depth=1, drop_path_rate=0.3).blocks[0].drop_path.p == 0.0


def test_vig_ti_fer_is_documented_config():
    model = pyg_fer.create_model("vig_ti_fer")
    assert model.embed.num_nodes == 196 and model.embed_dim == 192 and len(model.blocks) == 12
    assert model.dilations == [1] * 4 + [2] * 4 + [3] * 4
    assert all(isinstance(b.conv, pyg_fer.nn.MRConv) and b.k == 9 for b in model.blocks)
    assert all(b.cosine for b in model.blocks)  # ViG L2-normalises before its k-NN
    assert model.head[0].out_features == 1024


def test_face2nodes_head_averages_the_nodes_into_a_half_width_hidden_layer():
    model = small("face2nodes").eval()
    assert [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)] == [32, 7]
    nodes = torch.randn(3, 16, 64)
    torch.testing.assert_close(model.forward_head(nodes), model.head(nodes.mean(dim=1)))
    # the mean over nodes: a permutation of the nodes changes nothing, a scaled node does
    torch.testing.assert_close(model.forward_head(nodes[:, torch.randperm(16)]),
                               model.forward_head(nodes))


def test_grayscale_input_is_rejected_with_a_clear_message():
    model = small("face2nodes").eval()
    with pytest.raises(ValueError, match="grayscale"):
        model(torch.rand(1, 1, IMG, IMG))


def test_default_face2nodes_smoke():
    model = pyg_fer.create_model("face2nodes").eval()
    n = sum(p.numel() for p in model.parameters())
    assert 36.5e6 < n < 37.0e6  # Table 2: 36.58 M (docs/design.md)
    assert model.cfg["input_size"] == [3, 224, 224] and model.num_nodes == 49
    assert model.dilations == [1, 1, 1, 1, 2, 2, 2, 2]
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert model.graphs[-1].shape == (2, 2 * 49 * 9)


@pytest.mark.parametrize("name", pyg_fer.list_models())
def test_training_batch_of_one_trains_or_says_why(name):
    model = small(name).train()
    try:
        out = model(torch.randn(1, 3, IMG, IMG))
    except ValueError as err:  # per-sample BatchNorm: the message says why and what to do
        assert "batch of 1" in str(err) and "model.eval()" in str(err), str(err)
    else:
        out.sum().backward()
        assert out.shape == (1, 7)


def test_face2nodes_forward_compiles_fullgraph():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = small("face2nodes", img_size=IMG).eval()
    x = torch.randn(2, 3, IMG, IMG)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["face2nodes_mr", "face2nodes_stem", "vig_ti_fer"])
def test_graph_models_compile_fullgraph(name):
    torch._dynamo.reset()
    model = small(name, img_size=IMG).eval()
    x = torch.randn(2, 3, IMG, IMG)
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", pyg_fer.list_models())
def test_default_models_at_224(name):
    model = pyg_fer.create_model(name).train()
    out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()
