"""PyG's explainers on one RDGCN block (GNNExplainer; CaptumExplainer when captum is there)."""

import copy

import pytest
import torch
from PIL import Image
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks
from torch_geometric.nn import MessagePassing

from pyg_fer.explain import BlockGraphModel, draw_edge_mask, explain_block_edges
from pyg_fer.explain.explainers import _block_input
from pyg_fer.nn.knn import neighbours_to_edge_index

from .conftest import tiny_graph_model


def test_block_graph_model_is_the_model_and_honours_masks():
    torch.manual_seed(0)
    model = tiny_graph_model(calibrate=True)
    image = torch.randn(1, 3, 32, 32)
    for block in (1, 2):
        x, logits = _block_input(model, image, block)
        edge_index = neighbours_to_edge_index(model.blocks[block - 1].last_neighbours[0])
        wrapped = BlockGraphModel(model, image, block)
        assert torch.allclose(wrapped(x, edge_index), logits, atol=1e-5)
        passing = [m for m in wrapped.modules() if isinstance(m, MessagePassing)]
        assert passing == [model.blocks[block - 1].conv]  # the explainer masks this conv only
        set_masks(wrapped, torch.zeros(edge_index.size(1)), edge_index, apply_sigmoid=False)
        no_edges = wrapped(x, edge_index)
        clear_masks(wrapped)
        assert not torch.allclose(no_edges, logits, atol=1e-3)
        assert torch.allclose(wrapped(x, edge_index[:, :0]), no_edges, atol=1e-6)
        assert "forward" not in vars(model.blocks[block - 1])  # the block is itself again


def _planted(model, image):
    """Block-1 features all zero but node 7's: only edges into or out of node 7 carry a
    relation; the class explained is the one those edges raise most."""
    x_img, _ = _block_input(model, image, 1)
    edge_index = neighbours_to_edge_index(model.blocks[0].last_neighbours[0])
    x = torch.zeros_like(x_img)
    x[7] = 3 * torch.randn(x.size(1))
    hot = (edge_index[0] == 7) | (edge_index[1] == 7)
    wrapped = BlockGraphModel(model, image, 1)
    with torch.no_grad():
        full = wrapped(x, edge_index)[0]
        set_masks(wrapped, (~hot).float(), edge_index, apply_sigmoid=False)
        cut = wrapped(x, edge_index)[0]
        clear_masks(wrapped)
    return x, hot, int((full - cut).argmax())


ALGORITHMS = ["gnnexplainer", "integrated_gradients"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_only_the_edges_that_matter_get_mask(algorithm, tmp_path):
    if algorithm != "gnnexplainer":
        pytest.importorskip("captum")
    torch.manual_seed(0)
    model = tiny_graph_model()
    image = torch.randn(1, 3, 32, 32)
    x, hot, cls = _planted(model, image)
    assert 3 <= int(hot.sum()) < hot.numel()
    expl = explain_block_edges(model, image, 1, cls, algorithm=algorithm, x=x, epochs=60)
    mask = expl.edge_mask
    assert mask.shape == (16 * 3,) and expl.edge_index.shape == (2, 16 * 3)
    assert expl.block == 1 and expl.target == cls and expl.grid == (4, 4)
    assert mask.min() >= 0 and mask.max() <= 1
    assert float(mask[~hot].max()) < 0.05 < float(mask[hot].mean())
    path = draw_edge_mask(expl, torch.rand(50, 60, 3), tmp_path / "m.png", top=5)
    with Image.open(path) as im:
        assert im.size == (60, 50)


def test_explain_block_edges_on_the_image_and_bad_inputs():
    torch.manual_seed(0)
    model = tiny_graph_model()
    image = torch.randn(3, 32, 32)
    rng = torch.get_rng_state()
    expl = explain_block_edges(model, image, epochs=20, target="sad",
                               class_names=["anger", "happy", "sad"])
    assert torch.equal(torch.get_rng_state(), rng)  # the mask's seed is private
    assert expl.block == 2 and expl.target == 2 and not model.training
    assert torch.equal(expl.edge_index, model.blocks[1].last_edge_index)
    again = explain_block_edges(model, image, epochs=20, target=2)
    assert torch.equal(expl.edge_mask, again.edge_mask)  # same seed, same mask
    with pytest.raises(ValueError, match="block=3 is out of range"):
        explain_block_edges(model, image, block=3)
    with pytest.raises(ValueError, match="unknown class name 'joy'"):
        explain_block_edges(model, image, target="joy", class_names=["a", "b", "c"])
    model.cfg["class_names"] = ["anger", "happy", "sad"]  # the model's names by default
    assert explain_block_edges(model, image, epochs=20, target="sad").target == 2
    with pytest.raises(ValueError, match="unknown algorithm"):
        explain_block_edges(model, image, algorithm="lime")
    with pytest.raises(ValueError, match="x must have the block's input shape"):
        explain_block_edges(model, image, x=torch.zeros(3, 16))


@pytest.mark.parametrize("algorithm", ["saliency", "integrated_gradients"])
def test_captum_after_gnnexplainer_on_the_same_model(algorithm):
    # GNNExplainer leaves an empty `_edge_mask` parameter slot on each conv; PyG's set_masks
    # then cut the next mask off Captum's input ("not used in the graph")
    pytest.importorskip("captum")
    torch.manual_seed(0)
    model = tiny_graph_model(calibrate=True)
    image = torch.randn(3, 32, 32)
    fresh = explain_block_edges(copy.deepcopy(model), image, algorithm=algorithm)
    explain_block_edges(model, image, epochs=3)
    after = explain_block_edges(model, image, algorithm=algorithm)
    assert torch.allclose(after.edge_mask, fresh.edge_mask, atol=1e-6)
    assert all("_edge_mask" not in m._parameters for m in model.modules())


GRAPH_MODELS = [n for n in __import__("pyg_fer").list_models()
                if n.startswith("face2nodes") or n.startswith("vig")]


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_every_registered_graph_model(name):
    from pyg_fer import create_model
    from pyg_fer.explain import block_graphs

    torch.manual_seed(0)
    model = create_model(name, num_classes=3, img_size=32).eval()
    image = torch.randn(1, 3, 32, 32)
    graphs = block_graphs(model, image)
    assert graphs[0].kind == ("distance" if name in ("face2nodes_mr", "vig_ti_fer") else "gate")
    x, logits = _block_input(model, image, 2)
    wrapped = BlockGraphModel(model, image, 2)
    assert torch.allclose(wrapped(x, graphs[1].edge_index), logits, atol=1e-4)
    expl = explain_block_edges(model, image, block=2, epochs=2)
    assert expl.edge_mask.shape == (graphs[1].edge_index.size(1),)
    assert torch.equal(expl.edge_index, graphs[1].edge_index)


def test_captum_missing_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "captum", None)  # import captum -> ImportError
    model = tiny_graph_model()
    with pytest.raises(ImportError, match=r"pip install 'pyg-fer\[explain\]'"):
        explain_block_edges(model, torch.randn(1, 3, 32, 32), algorithm="saliency")
