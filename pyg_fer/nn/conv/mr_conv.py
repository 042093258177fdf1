from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj, PairTensor

from pyg_fer.nn.conv._fused import (
    ExactExtremumAggregation, NoFeatureDecomposition, aggregated_channels, can_fuse,
    check_channels, check_same_graph, flat_neighbours, node_features, reduce_neighbours,
)
from pyg_fer.nn.knn import neighbours_to_edge_index


class MRConv(ExactExtremumAggregation, NoFeatureDecomposition, MessagePassing):
    r"""The max-relative graph convolution (MR-GraphConv) from the `"DeepGCNs: Can GCNs Go as
    Deep as CNNs?" <https://arxiv.org/abs/1904.03751>`_ paper, as used by Vision GNN (ViG) and
    as the graph-convolution baseline of Face2Nodes' Table 4:

    .. math::
        \mathbf{g}_i = \max_{j \in \mathcal{N}(i)} \left(\mathbf{x}_j - \mathbf{x}_i\right),
        \qquad
        \mathbf{x}^{\prime}_i = f\left([\mathbf{x}_i \,\Vert\, \mathbf{g}_i]\right),

    with the channel-wise maximum and :math:`f` = Linear(:math:`2F \to F'`) + BatchNorm + GELU,
    the same update as :class:`~pyg_fer.nn.RGConv`, so the two are interchangeable. A node
    without neighbours gets :math:`\mathbf{g}_i = \mathbf{0}`.

    Args:
        in_channels (int): Size :math:`F` of each input sample.
        out_channels (int): Size :math:`F'` of each output sample.
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`: every ``aggr`` (max is the
            default; a concatenating :class:`~torch_geometric.nn.aggr.MultiAggregation` widens
            :math:`f`'s input), both ``flow`` directions, explanation masks and hooks behave as
            PyG documents. ``decomposed_layers > 1`` is refused: PyG splits only plain
            feature tensors, and the layer passes (source, target) pairs.

    **Fused k-NN path.** Given a neighbour table ``neighbours`` (``[num_targets, k]`` global
    ids or ``[B, N, k]`` local ids, as :func:`~pyg_fer.nn.dilated_knn` returns), the layer
    reduces gathered neighbours over a dense ``k`` axis (:math:`\max_j (x_j - x_i) =
    \max_j x_j - x_i` exactly in floating point, rounding being monotonic) when that is the
    same layer as ``propagate`` (see :class:`~pyg_fer.nn.RGConv`), and otherwise runs
    ``propagate`` on ``neighbours_to_edge_index(neighbours)``.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)` or
          :math:`((|\mathcal{V}_s|, F), (|\mathcal{V}_t|, F))` if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)` or a sparse adjacency ``adj_t``,
          and/or a neighbour table :math:`(|\mathcal{V}_t|, k)` or :math:`(B, N, k)`
        - **output:** node features :math:`(|\mathcal{V}|, F')` or
          :math:`(|\mathcal{V}_t|, F')` if bipartite
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        kwargs.setdefault("aggr", "max")
        super().__init__(**kwargs)
        check_channels(self, in_channels, out_channels)
        self.in_channels = in_channels
        self.out_channels = out_channels
        aggr_channels = aggregated_channels(self, in_channels)
        self.update_lin = nn.Linear(in_channels + aggr_channels, out_channels)
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.GELU()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.update_lin.reset_parameters()
        self.norm.reset_parameters()

    def forward(
        self,
        x: Tensor | PairTensor,
        edge_index: Adj | None = None,
        neighbours: Tensor | None = None,
    ) -> Tensor:
        x = x_src, x_dst = node_features(self, x, self.in_channels)
        if neighbours is not None:
            flat = flat_neighbours(self, neighbours, x_src, x_dst)
            check_same_graph(self, edge_index, neighbours)
            if can_fuse(self, neighbours):
                if self.aggr in ("max", "min"):  # x_i commutes with the reduction
                    aggr = reduce_neighbours(x_src[flat], self.aggr) - x_dst
                else:
                    aggr = reduce_neighbours(x_src[flat] - x_dst.unsqueeze(1), self.aggr)
                return self._update(x_dst, aggr)
            if edge_index is None:
                edge_index = neighbours_to_edge_index(flat)
        elif edge_index is None:
            raise ValueError(f"{self}: pass edge_index, neighbours or both")
        # propagate_type: (x: PairTensor)
        return self._update(x_dst, self.propagate(edge_index, x=x))

    def message(self, x_i: Tensor, x_j: Tensor) -> Tensor:
        return x_j - x_i

    def _update(self, x_dst: Tensor, aggr: Tensor) -> Tensor:
        return self.act(self.norm(self.update_lin(torch.cat([x_dst, aggr], dim=-1))))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"
