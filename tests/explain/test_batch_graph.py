"""AGFN's batch graph thumbnail."""

import numpy as np
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
    with pytest.raises(ValueError, match="the 2 labels given number nodes 0..1"):
        draw_batch_graph(torch.tensor([[0], [5]]), [0, 1], tmp_path / "x.png")


def _agfn_model():
    model = create_model("agfn_resnet18", num_classes=3, img_size=32)
    with torch.no_grad():
        model.graph_norm.graph.beta.fill_(-0.9)  # some pairs, not all (as above)
    return model


def test_seed_none_draws_from_the_global_rng_and_a_training_model_stays_in_training(images):
    model = _agfn_model().train()
    running = model.trunk.bn1.running_mean.clone()
    torch.manual_seed(5)
    edges, _ = batch_graph(model, images, seed=None)
    assert model.training  # given back as it came, its BatchNorm statistics untouched
    assert torch.equal(model.trunk.bn1.running_mean, running)
    with torch.no_grad():
        feats = model.eval().extract(images)
        torch.manual_seed(5)
        expected = model.graph_norm.graph(feats, sample=True).sampled_edge_index()
    assert torch.equal(edges, expected)
    seeded, _ = batch_graph(model, images, seed=0)
    assert not torch.equal(edges, seeded)  # so the draw above did not come from seed 0


def test_a_model_without_extract_is_not_an_agfn_model(images):
    class GraphOnly(torch.nn.Module):
        graph_norm = torch.nn.Identity()

    with pytest.raises(TypeError, match="GraphOnly is not an AGFN model"):
        batch_graph(GraphOnly(), images)


def _drawn(monkeypatch, tmp_path, edge_index, labels, **kwargs):
    """The axes ``draw_batch_graph`` draws (the figure is caught before it is written)."""
    import importlib

    module = importlib.import_module("pyg_fer.explain.batch_graph")  # not the function
    figures = []
    monkeypatch.setattr(module, "save_figure", lambda fig, path: figures.append(fig) or path)
    draw_batch_graph(edge_index, labels, tmp_path / "g.png", **kwargs)
    (fig,) = figures
    return fig.axes[0]


def test_drawing_groups_samples_by_label_and_draws_each_pair_once(monkeypatch, tmp_path):
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    # samples 0, 2 are class 1; 1, 3 class 0; pairs (0, 2), (1, 3) within a class, (0, 1) across,
    # each given in both directions
    edge_index = torch.tensor([[0, 2, 1, 3, 0, 1], [2, 0, 3, 1, 1, 0]])
    ax = _drawn(monkeypatch, tmp_path, edge_index, [1, 0, 1, 0], class_names=["calm", "glad"])
    # class 0 first around the circle (slots 0, 1), then class 1 (slots 2, 3)
    nodes = next(c for c in ax.collections if len(c.get_offsets()) == 4)
    slot = {1: (1, 0), 3: (0, 1), 0: (-1, 0), 2: (0, -1)}
    np.testing.assert_allclose(np.asarray(nodes.get_offsets()), [slot[i] for i in range(4)],
                               atol=1e-12)
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    np.testing.assert_allclose(np.asarray(lines.get_segments()),  # the sorted pairs
                               [(slot[0], slot[1]), (slot[0], slot[2]), (slot[1], slot[3])],
                               atol=1e-12)
    tab10 = colormaps["tab10"]
    np.testing.assert_allclose(lines.get_colors()[:, :3],
                               [(0.6, 0.6, 0.6), tab10(1)[:3], tab10(0)[:3]])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["calm", "glad"]
    assert [t.get_text() for t in ax.texts] == ["4 samples, 3 linked pairs"]


def test_drawing_refuses_a_node_past_the_labels(tmp_path):
    with pytest.raises(ValueError, match=r"refers to node 2, but the 2 labels given number "
                                         r"nodes 0\.\.1"):
        draw_batch_graph(torch.tensor([[0], [2]]), [0, 1], tmp_path / "x.png")
    # a negative id used to wrap round to the last sample and be drawn as a real link
    with pytest.raises(ValueError, match="refers to node -1, but the 3 labels"):
        draw_batch_graph(torch.tensor([[-1], [0]]), [0, 1, 1], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
