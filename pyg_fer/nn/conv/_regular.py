"""Detects the k-regular, centre-grouped edge layout that :func:`dilated_knn_graph` returns."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def regular_neighbours(edge_index: object, num_targets: int) -> Optional[Tensor]:
    """The ``[num_targets, k]`` neighbour table if ``edge_index`` lists, for every target
    ``i = 0, 1, ...`` in order, exactly ``k`` source nodes (row 1 is
    ``arange(num_targets).repeat_interleave(k)``); else :obj:`None`.

    Convolutions use it to aggregate with a gather and a reduction over a dense ``k`` axis
    instead of a scatter over edges; the result is the same sum/max over the same edges.
    """
    if type(edge_index) is not Tensor or edge_index.layout != torch.strided:
        return None
    if edge_index.dim() != 2 or num_targets == 0:
        return None
    num_edges = edge_index.size(1)
    if num_edges == 0 or num_edges % num_targets != 0:
        return None
    k = num_edges // num_targets
    target = edge_index[1].view(num_targets, k)
    expected = torch.arange(num_targets, device=target.device, dtype=target.dtype)
    if not bool((target == expected[:, None]).all()):
        return None
    return edge_index[0].view(num_targets, k)
