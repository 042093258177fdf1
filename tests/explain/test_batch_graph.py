"""AGFN's batch graph thumbnail."""

import pytest
import torch
from PIL import Image

from pyg_fer import create_model
from pyg_fer.explain import batch_graph, draw_batch_graph


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    return torch.randn(6, 3, 32, 32)


def test_poisson_batch_graph_is_the_models_draw(images, tmp_path):
    model = create_model("agfn_resnet18", num_classes=3, img_size=32).eval()
    norm = model.graph_norm
    with torch.no_grad():
        norm.graph.beta.fill_(-0.9)  # rate = relu(1.4 cos - 0.9): some pairs, not all
    rng = torch.get_rng_state()
    edges, prob = batch_graph(model, images, seed=3)
    assert torch.equal(torch.get_rng_state(), rng) and not model.training
    with torch.no_grad():
        feats = model.extract(images)
        torch.manual_seed(3)
        expected = norm.graph(feats, sample=True)
    assert torch.equal(edges, expected.sampled_edge_index())
    assert torch.allclose(prob, expected.prob)
    assert (edges[0] != edges[1]).all() and 0 < edges.size(1) < 6 * 5
    # every drawn pair has a positive probability; the expected graph keeps those pairs
    assert (prob[edges[1], edges[0]] > 0).all()
    all_pairs, _ = batch_graph(model, images, sample=False)
    assert set(map(tuple, edges.t().tolist())) <= set(map(tuple, all_pairs.t().tolist()))
    path = draw_batch_graph(edges, [0, 1, 2, 0, 1, 2], tmp_path / "b.png",
                            class_names=["a", "b", "c"], size=200)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (200, 200)


def test_threshold_graph_and_bad_inputs(images, tmp_path):
    model = create_model("baseline_gcn_resnet18", num_classes=3, img_size=32).eval()
    edges, prob = batch_graph(model, images)
    with torch.no_grad():
        assert torch.equal(edges, model.graph_norm.edge_index(model.extract(images)))
    assert prob is None
    with pytest.raises(TypeError, match="not an AGFN model"):
        batch_graph(create_model("resnet18_fer", num_classes=3, img_size=32), images)
    with pytest.raises(ValueError, match="B >= 2"):
        batch_graph(model, images[:1])
    with pytest.raises(ValueError, match="only 2 labels"):
        draw_batch_graph(torch.tensor([[0], [5]]), [0, 1], tmp_path / "x.png")
