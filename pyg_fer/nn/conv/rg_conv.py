from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj, PairTensor

from pyg_fer.nn.conv._fused import (
    ExactExtremumAggregation, NoFeatureDecomposition, aggregated_channels, can_fuse,
    check_channels, check_neighbours, check_same_graph, flatten_neighbours, node_features,
    reduce_neighbours,
)
from pyg_fer.nn.knn import neighbours_to_edge_index

GATES = ("scalar", "channel")


class RGConv(ExactExtremumAggregation, NoFeatureDecomposition, MessagePassing):
    r"""The relation-aware graph convolution (RG-Conv) from the `"Face2Nodes: Learning facial
    expression representations with relation-aware dynamic graph convolution networks"
    <https://doi.org/10.1016/j.ins.2023.119640>`_ paper (Eq. 7-8).

    Edges :math:`\mathbf{x}_j - \mathbf{x}_i` (relations), re-weighted by a learned gate, are
    summed over the neighbourhood, and the centre's feature is updated from its concatenation
    with that aggregate:

    .. math::
        \mathbf{g}_i = \sum_{j \in \mathcal{N}(i)}
        h(\mathbf{x}_j - \mathbf{x}_i) \odot (\mathbf{x}_j - \mathbf{x}_i),
        \qquad
        \mathbf{x}^{\prime}_i = f\left([\mathbf{x}_i \,\Vert\, \mathbf{g}_i]\right),

    with :math:`h(\mathbf{r}) = \sigma(\mathbf{W}_h \mathbf{r} + \mathbf{b}_h)` (a fully
    connected layer and a sigmoid) and :math:`f` = Linear(:math:`2F \to F'`) + BatchNorm +
    GELU. :math:`h` is computed per node and gathered per edge, which is exact because it is
    affine: :math:`\mathbf{W}_h(\mathbf{x}_j - \mathbf{x}_i) + \mathbf{b}_h =
    \mathbf{W}_h\mathbf{x}_j - \mathbf{W}_h\mathbf{x}_i + \mathbf{b}_h`.

    Args:
        in_channels (int): Size :math:`F` of each input sample.
        out_channels (int): Size :math:`F'` of each output sample.
        gate (str, optional): ``"scalar"``: one weight per edge (:math:`\mathbf{W}_h \in
            \mathbb{R}^{1 \times F}`, the reading consistent with the paper's Table 2
            parameter count); ``"channel"``: one weight per edge and channel
            (:math:`\mathbf{W}_h \in \mathbb{R}^{F \times F}`). (default: :obj:`"scalar"`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`: every ``aggr`` (the sum above is
            the paper's and the default; a concatenating
            :class:`~torch_geometric.nn.aggr.MultiAggregation` widens :math:`f`'s input) and
            both ``flow`` directions behave as PyG documents, as do explanation masks and
            message-passing hooks. ``decomposed_layers > 1`` is refused: the gate of an edge
            reads all channels of its relation.

    **Fused k-NN path.** ``forward`` also takes the graph as a neighbour table
    ``neighbours`` (``[num_targets, k]`` global source ids, or ``[B, N, k]`` ids local to
    ``B`` equal-size graphs, as :func:`~pyg_fer.nn.dilated_knn` returns). Then the layer
    gathers neighbours along a dense ``k`` axis (or, for a ``[B, N, k]`` table with the scalar
    gate and a sum or mean, builds each graph's gated adjacency and applies it with one batched
    matrix product) instead of scattering over edges. It takes that path only when it is the
    same layer as ``propagate`` (:func:`can_fuse`: ``aggr`` in sum/mean/max/min,
    ``source_to_target``, no explanation masks, no hooks); otherwise it runs ``propagate`` on
    ``neighbours_to_edge_index(neighbours)``. ``conv(x, neighbours=nbr)`` therefore always
    equals ``conv(x, neighbours_to_edge_index(nbr))``.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)` or
          :math:`((|\mathcal{V}_s|, F), (|\mathcal{V}_t|, F))` if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)` or a sparse adjacency ``adj_t``,
          and/or a neighbour table :math:`(|\mathcal{V}_t|, k)` or :math:`(B, N, k)`
        - **output:** node features :math:`(|\mathcal{V}|, F')` or
          :math:`(|\mathcal{V}_t|, F')` if bipartite
    """

    def __init__(
        self, in_channels: int, out_channels: int, gate: str = "scalar", **kwargs
    ) -> None:
        kwargs.setdefault("aggr", "sum")
        super().__init__(**kwargs)
        if gate not in GATES:
            raise ValueError(f"unknown gate '{gate}'; expected one of {GATES}")
        check_channels(self, in_channels, out_channels)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.gate = gate
        self.gate_lin = nn.Linear(in_channels, 1 if gate == "scalar" else in_channels)
        aggr_channels = aggregated_channels(self, in_channels)
        self.update_lin = nn.Linear(in_channels + aggr_channels, out_channels)
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.GELU()
        self.reset_parameters()

    DECOMPOSITION_REFUSAL = "the gate of an edge reads all channels of its relation"

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.gate_lin.reset_parameters()
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
            check_neighbours(self, neighbours, x_src, x_dst)
            check_same_graph(self, edge_index, neighbours)
            if can_fuse(self, neighbours):
                return self._update(x_dst, self._fused_aggregate(x_src, x_dst, neighbours))
            if edge_index is None:
                edge_index = neighbours_to_edge_index(flatten_neighbours(neighbours))
        elif edge_index is None:
            raise ValueError(f"{self}: pass edge_index, neighbours or both")
        # Gate logits per node (no bias); the bias is added once per edge in message().
        # propagate_type: (x: PairTensor, h: PairTensor)
        return self._update(x_dst, self.propagate(edge_index, x=x, h=self._gate_logits(x)))

    def message(self, x_i: Tensor, x_j: Tensor, h_i: Tensor, h_j: Tensor) -> Tensor:
        weight = torch.sigmoid(h_j - h_i + self.gate_lin.bias)
        return weight * (x_j - x_i)

    def _update(self, x_dst: Tensor, aggr: Tensor) -> Tensor:
        return self.act(self.norm(self.update_lin(torch.cat([x_dst, aggr], dim=-1))))

    def _gate_logits(self, x: PairTensor) -> PairTensor:
        """:math:`\\mathbf{W}_h \\mathbf{x}` of the source and target nodes (no bias), computed
        once when both sides are the same tensor (the usual ``conv(x, ...)`` call)."""
        weight = self.gate_lin.weight
        h_src = x[0] @ weight.t()
        return h_src, x[1] @ weight.t()

    def _fused_aggregate(self, x_src: Tensor, x_dst: Tensor, neighbours: Tensor) -> Tensor:
        """The aggregate of ``propagate`` over a neighbour table, ``[num_targets, F]``."""
        linear = self.aggr in ("sum", "add", "mean")
        k = neighbours.size(-1)
        if neighbours.dim() == 3 and self.gate == "scalar" and linear:
            out = self._dense_aggregate(x_src, x_dst, neighbours.long())
        else:
            flat = flatten_neighbours(neighbours)
            h_src, h_dst = self._gate_logits((x_src, x_dst))
            gate = torch.sigmoid(h_src[flat] - h_dst.unsqueeze(1) + self.gate_lin.bias)
            x_j = x_src[flat]  # [num_targets, k, F]
            if not linear:
                return reduce_neighbours(gate * (x_j - x_dst.unsqueeze(1)), self.aggr)
            # sum_j g_ij (x_j - x_i) = sum_j g_ij x_j - x_i sum_j g_ij, x_j gathered once.
            if self.gate == "scalar":
                weighted = torch.bmm(gate.transpose(1, 2), x_j).squeeze(1)
            else:
                weighted = (gate * x_j).sum(dim=1)
            out = weighted - x_dst * gate.sum(dim=1)
        return out / k if self.aggr == "mean" else out

    def _dense_aggregate(self, x_src: Tensor, x_dst: Tensor, neighbours: Tensor) -> Tensor:
        r"""Sum aggregation on ``B`` equal-size graphs as one batched matrix product: with
        :math:`w_{ij} = \sigma(h_j - h_i + b)` and :math:`A_{ij} = \sum w_{ij}` over the
        edges :math:`j \to i`, :math:`g_i = (A X)_i - (A \mathbf{1})_i\, x_i`; no per-edge
        features and no ``[B N, k, F]`` gather (``benchmarks/throughput.py --conv-paths``)."""
        num_graphs, nodes, k = neighbours.shape
        src = x_src.view(num_graphs, nodes, x_src.size(-1))  # (-1 is ambiguous at B = 0)
        dst = x_dst.view(num_graphs, nodes, x_dst.size(-1))
        # Gate logit per node, [B, N]. Twice, although src is dst in a block: one product used
        # twice sums its two gradients before the weight's, which rounds differently and
        # moved the demo's seed-0 result (docs/design.md, Speed); this keeps it to the digit.
        weight = self.gate_lin.weight
        h_src = (src @ weight.t()).squeeze(-1)
        h_dst = (dst @ weight.t()).squeeze(-1)
        h_j = h_src.gather(1, neighbours.reshape(num_graphs, nodes * k))
        gate = torch.sigmoid(h_j.view(num_graphs, nodes, k) - h_dst.unsqueeze(-1)
                             + self.gate_lin.bias)
        adj = src.new_zeros(num_graphs, nodes, nodes).scatter_add_(
            2, neighbours, gate.to(src.dtype)
        )
        # A X - (A 1) x_i in one batched product with the subtraction in its epilogue.
        out = torch.baddbmm(adj.sum(-1, keepdim=True) * dst, adj, src, beta=-1.0)
        return out.view(num_graphs * nodes, out.size(-1))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"gate={self.gate})"
        )
