import torch
from PIL import Image

from pyg_fer import create_model
from pyg_fer.explain.graph import draw_face_graph, face_graph_edges
from pyg_fer.nn.knn import neighbours_to_edge_index


def test_drawn_edges_are_the_blocks_knn_edges(tmp_path):
    torch.manual_seed(0)
    model = create_model("face2nodes_stem", num_classes=3, img_size=32, embed_dim=16, depth=2,
                         grid_size=4, k=3).eval()
    x = torch.randn(1, 3, 32, 32)
    edges, centres, grid = face_graph_edges(model, x, block=2)
    assert torch.equal(edges, neighbours_to_edge_index(model.blocks[1].last_neighbours))
    assert grid == (4, 4) and centres.shape == (16, 2)
    assert torch.allclose(centres[5], torch.tensor([12.0, 12.0]))
    drawn, path = draw_face_graph(model, x, torch.rand(64, 80, 3), tmp_path / "g.png", block=2,
                                  nodes=[0, 5])
    assert torch.equal(drawn, edges[:, (edges[1] == 0) | (edges[1] == 5)])
    with Image.open(path) as im:
        assert im.size == (80, 64)
