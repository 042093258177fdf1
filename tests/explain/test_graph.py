import pytest
import torch
from PIL import Image

from pyg_fer import create_model
from pyg_fer.explain import (
    block_graphs,
    draw_face_graph,
    draw_neighbourhoods,
    face_graph_edges,
    grad_cam,
    rg_edge_gates,
)
from pyg_fer.explain._plot import node_centres
from pyg_fer.nn import RGConv
from pyg_fer.nn.knn import neighbours_to_edge_index

from .conftest import tiny_graph_model


def test_drawn_edges_are_the_blocks_knn_edges(tmp_path):
    torch.manual_seed(0)
    model = tiny_graph_model()
    x = torch.randn(1, 3, 32, 32)
    edges, centres, grid = face_graph_edges(model, x, block=2)
    assert torch.equal(edges, neighbours_to_edge_index(model.blocks[1].last_neighbours))
    assert grid == (4, 4) and centres.shape == (16, 2)
    assert torch.allclose(centres[5], torch.tensor([12.0, 12.0]))
    drawn, path = draw_face_graph(model, x, torch.rand(64, 80, 3), tmp_path / "g.png", block=2,
                                  nodes=[0, 5])
    assert torch.equal(drawn, edges[:, (edges[1] == 0) | (edges[1] == 5)])
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (80, 64)
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]  # no temporary file left


@pytest.mark.parametrize("gate", ["scalar", "channel"])
def test_rg_edge_gates_are_the_convs_own_weights(gate):
    # The conv's aggregate sum_j h_ij (x_j - x_i), rebuilt from the recomputed gates, must give
    # the conv's output on both its propagate and its fused neighbour-table path.
    torch.manual_seed(0)
    conv = RGConv(4, 3, gate=gate).eval()
    x = torch.randn(6, 4)
    nbr = torch.tensor([[1, 2], [0, 5], [4, 3], [2, 1], [5, 0], [3, 4]])
    edge_index = neighbours_to_edge_index(nbr)
    g = rg_edge_gates(conv, x, edge_index)
    assert g.shape == ((12,) if gate == "scalar" else (12, 4))
    assert g.min() > 0 and g.max() < 1
    src, dst = edge_index
    msg = (g if g.dim() == 2 else g[:, None]) * (x[src] - x[dst])
    aggr = torch.zeros(6, 4).index_add_(0, dst, msg)
    expected = conv._update(x, aggr)
    assert torch.allclose(conv(x, edge_index), expected, atol=1e-6)
    assert torch.allclose(conv(x, neighbours=nbr), expected, atol=1e-5)
    # and by hand for one edge: sigma(W (x_j - x_i) + b)
    w, b = conv.gate_lin.weight, conv.gate_lin.bias
    manual = torch.sigmoid(w @ (x[1] - x[0]) + b)
    assert torch.allclose(g[0], manual if gate == "channel" else manual[0], atol=1e-6)
    with pytest.raises(TypeError, match="RGConv"):
        rg_edge_gates(torch.nn.Linear(4, 4), x, edge_index)


def test_block_graphs_gate_and_distance():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    model = tiny_graph_model()
    graphs = block_graphs(model, x)
    assert [g.block for g in graphs] == [1, 2] and all(g.kind == "gate" for g in graphs)
    for g, block in zip(graphs, model.blocks, strict=True):
        assert torch.equal(g.edge_index, neighbours_to_edge_index(block.last_neighbours[0]))
        y = block.fc_in(model.embed(x) if g.block == 1 else model.blocks[0](model.embed(x)))
        assert torch.allclose(g.features, y[0], atol=1e-5)
        assert torch.allclose(g.strength, rg_edge_gates(block.conv, y[0], g.edge_index))
    mr = block_graphs(tiny_graph_model(conv="mr"), x)
    src, dst = mr[0].edge_index
    assert mr[0].kind == "distance"
    assert torch.allclose(mr[0].strength, (mr[0].features[src] - mr[0].features[dst]).norm(dim=1))


def test_top_nodes_and_small_multiples(tmp_path):
    torch.manual_seed(0)
    model = tiny_graph_model(depth=3)
    x = torch.randn(1, 3, 32, 32)
    cam, _ = grad_cam(model, x, block=3, upsample=False)
    assert cam.shape == (1, 4, 4)
    top = set(cam[0].flatten().topk(2).indices.tolist())
    edges, _ = draw_face_graph(model, x, torch.rand(48, 48, 3), tmp_path / "t.png", block=3,
                               top=2)
    assert set(edges[1].tolist()) == top and edges.size(1) == 2 * 3
    with pytest.raises(ValueError, match="top=17"):
        draw_face_graph(model, x, torch.rand(48, 48, 3), tmp_path / "t.png", top=17)
    node, found, path = draw_neighbourhoods(model, x, torch.rand(40, 40, 3), tmp_path / "n.png",
                                            node=5, panel=64)
    assert node == 5 and len(found) == 3
    for nbrs, block in zip(found, model.blocks, strict=True):
        assert torch.equal(nbrs, block.last_neighbours[0, 5])
    with Image.open(path) as im:
        assert im.size == (3 * 64, 64 + 20)
    default, _, _ = draw_neighbourhoods(model, x, torch.rand(40, 40, 3), tmp_path / "d.png")
    assert default == int(grad_cam(model, x, block=3, upsample=False)[0].flatten().argmax())
    # blocks 1..L only, the default node taken at block L
    node, found, path = draw_neighbourhoods(model, x, torch.rand(40, 40, 3), tmp_path / "b.png",
                                            block=2, panel=64)
    assert len(found) == 2
    assert node == int(grad_cam(model, x, block=2, upsample=False)[0].flatten().argmax())
    for nbrs, blk in zip(found, model.blocks[:2], strict=True):
        assert torch.equal(nbrs, blk.last_neighbours[0, node])
    with Image.open(path) as im:
        assert im.size == (2 * 64, 64 + 20)
    with pytest.raises(ValueError, match="block=4 is out of range"):
        draw_neighbourhoods(model, x, torch.rand(40, 40, 3), tmp_path / "n.png", block=4)
    with pytest.raises(ValueError, match="node=16 is out of range"):
        draw_neighbourhoods(model, x, torch.rand(40, 40, 3), tmp_path / "n.png", node=16)


def test_node_centres_are_row_major():
    # grid (2 rows, 3 cols) over a 20-pixel-high, 30-pixel-wide image: 10 x 10 patches,
    # node i in row i // 3, column i % 3
    centres = node_centres((2, 3), 20, 30)
    assert centres.tolist() == [[5.0, 5.0], [15.0, 5.0], [25.0, 5.0],
                                [5.0, 15.0], [15.0, 15.0], [25.0, 15.0]]


def test_top_keeps_the_most_important_nodes(tmp_path):
    # A map that is not flat (the default target of the test above gives all 0, where any
    # nodes are "the top"), so keeping the least important nodes would show.
    torch.manual_seed(0)
    model = tiny_graph_model()
    x = torch.randn(1, 3, 32, 32)
    cam = grad_cam(model, x, 0, block=1, upsample=False)[0][0].flatten()
    order = cam.argsort(descending=True).tolist()
    assert cam[order[2]] > cam[order[3]]  # no tie at the cut
    edges, _ = draw_face_graph(model, x, torch.rand(32, 32, 3), tmp_path / "t.png", block=1,
                               top=3, target=0)
    assert sorted(set(edges[1].tolist())) == sorted(order[:3]) and edges.size(1) == 3 * 3


def test_top_and_edges_come_from_the_block_asked_for(tmp_path):
    # calibrated, so that blocks 1 and 2 rank their nodes differently
    torch.manual_seed(0)
    model = tiny_graph_model(calibrate=True)
    x = torch.randn(1, 3, 32, 32)
    cams = [grad_cam(model, x, 0, block=b, upsample=False)[0][0].flatten() for b in (1, 2)]
    tops = [set(c.topk(3).indices.tolist()) for c in cams]
    assert tops[0] != tops[1]
    g1 = block_graphs(model, x)[0]
    edges, _ = draw_face_graph(model, x, torch.rand(32, 32, 3), tmp_path / "t.png", block=1,
                               top=3, target=0)
    keep = torch.isin(g1.edge_index[1], torch.tensor(sorted(tops[0])))
    assert torch.equal(edges, g1.edge_index[:, keep])
    # `top` needs the importance map even when the widths do not use it
    plain, _ = draw_face_graph(model, x, torch.rand(32, 32, 3), tmp_path / "p.png", block=1,
                               top=3, target=0, importance=False)
    assert torch.equal(plain, edges)


def test_top_and_node_bounds(tmp_path):
    torch.manual_seed(0)
    model = tiny_graph_model()
    x = torch.randn(1, 3, 32, 32)
    disp = torch.rand(32, 32, 3)
    edges, _ = draw_face_graph(model, x, disp, tmp_path / "a.png", top=16)  # every node
    assert torch.equal(edges, block_graphs(model, x)[-1].edge_index)
    with pytest.raises(ValueError, match=r"top=0 must lie in 1..16 \(the number of nodes\)"):
        draw_face_graph(model, x, disp, tmp_path / "a.png", top=0)
    with pytest.raises(ValueError, match=r"node=-1 is out of range: the face graph has nodes "
                                         r"0..15"):
        draw_neighbourhoods(model, x, disp, tmp_path / "n.png", node=-1)


def test_block_graphs_channel_gate_dilations_and_image_shapes():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    model = tiny_graph_model(depth=3, gate="channel", dilations=[1, 2, 3])
    graphs = block_graphs(model, x)
    assert [g.dilation for g in graphs] == [1, 2, 3]
    for g, block in zip(graphs, model.blocks, strict=True):
        # the channel gate, averaged over channels: one value per edge
        gate = rg_edge_gates(block.conv, g.features, g.edge_index)
        assert gate.shape == (48, 16) and torch.allclose(g.strength, gate.mean(1))
    # [C, H, W] is one image; a batch of two is refused
    three = block_graphs(model, x[0])
    assert all(torch.equal(a.edge_index, b.edge_index) for a, b in zip(three, graphs,
                                                                        strict=True))
    with pytest.raises(ValueError, match=r"image must be \[C, H, W\] or \[1, C, H, W\], got "
                                         r"\(2, 3, 32, 32\)"):
        block_graphs(model, torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"x must be \[N, 16\], got \(16, 8\)"):
        rg_edge_gates(model.blocks[0].conv, torch.randn(16, 8), graphs[0].edge_index)


def test_graph_functions_restore_the_training_mode():
    model = tiny_graph_model().train()
    x = torch.randn(1, 3, 32, 32)
    block_graphs(model, x)
    assert model.training
    face_graph_edges(model, x)
    assert model.training


def test_node_centres_follow_a_non_square_image():
    model = tiny_graph_model()
    _, centres, grid = face_graph_edges(model, torch.randn(1, 3, 32, 48))
    assert grid == (4, 4)
    assert centres[:2].tolist() == [[6.0, 4.0], [18.0, 4.0]]  # 12 px wide, 8 px high patches


def test_an_agfn_model_draws_its_face2nodes_trunk():
    model = create_model("face2nodes_agfn", num_classes=3, img_size=32, embedder="stem",
                         embed_dim=16, depth=2, grid_size=4, k=3, feature_dim=8).eval()
    graphs = block_graphs(model, torch.randn(3, 32, 32))
    assert [g.block for g in graphs] == [1, 2]
    for g, block in zip(graphs, model.trunk.blocks, strict=True):
        assert torch.equal(g.edge_index, neighbours_to_edge_index(block.last_neighbours[0]))


def test_a_model_without_rdgcn_blocks_is_refused():
    class Stages(torch.nn.Module):  # what Grad-CAM reads as a CNN: ResNet stages
        def __init__(self):
            super().__init__()
            self.stages = torch.nn.ModuleList([torch.nn.Conv2d(3, 4, 3)])

        def forward(self, x):
            return self.stages[0](x).mean((2, 3))

    with pytest.raises(TypeError, match="Stages has no RDGCN blocks to draw a face graph of"):
        block_graphs(Stages(), torch.randn(3, 8, 8))
    with pytest.raises(TypeError, match="Stages has no RDGCN blocks to draw a face graph of"):
        face_graph_edges(Stages(), torch.randn(3, 8, 8))


def test_colour_draws_edges_in_the_colour_map_and_off_in_yellow(tmp_path):
    import numpy as np

    torch.manual_seed(0)
    model = tiny_graph_model()
    x = torch.randn(1, 3, 32, 32)
    black = torch.zeros(64, 64, 3)

    def yellow_pixels(**kw):
        _, path = draw_face_graph(model, x, black, tmp_path / "c.png", importance=False,
                                  cmap="gray", **kw)
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB")).astype(int)
        return int(((a[..., 0] > 150) & (a[..., 1] > 150) & (a[..., 2] < 80)).sum())

    assert yellow_pixels(colour=True) == 0  # gray edges (and red nodes)
    assert yellow_pixels(colour=False) > 20
