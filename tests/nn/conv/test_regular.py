import torch
from torch_geometric.utils import to_torch_csc_tensor

from pyg_fer.nn.conv._regular import regular_neighbours


def test_detects_centre_grouped_k_regular_edges():
    edge_index = torch.tensor([[3, 1, 0, 2, 1, 0], [0, 0, 1, 1, 2, 2]])
    assert regular_neighbours(edge_index, 3).tolist() == [[3, 1], [0, 2], [1, 0]]


def test_rejects_other_layouts():
    assert regular_neighbours(torch.tensor([[1, 0, 2], [0, 1, 1]]), 2) is None  # uneven
    assert regular_neighbours(torch.tensor([[1, 2], [1, 0]]), 2) is None  # not in order
    assert regular_neighbours(torch.tensor([[1, 2], [0, 0]]), 2) is None  # target 1 missing
    assert regular_neighbours(torch.empty(2, 0, dtype=torch.long), 2) is None
    adj = to_torch_csc_tensor(torch.tensor([[1, 0], [0, 1]]), size=(2, 2))
    assert regular_neighbours(adj.t(), 2) is None
