"""What the convolutions' fused k-NN paths share: the input checks, when a fused path is the
same layer as ``propagate``, the neighbour-table checks, the reduction over the dense ``k`` axis,
and a max/min aggregation whose gradient is exact on ties with zero."""

from __future__ import annotations

from typing import Any

import torch
import torch_geometric
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.aggr import MultiAggregation
from torch_geometric.typing import PairTensor, SparseTensor
from torch_geometric.utils import to_edge_index

from pyg_fer.nn.knn import neighbours_to_edge_index

# Aggregations a fused path computes exactly as PyG's string aggregations do.
FUSED_AGGRS = ("sum", "add", "mean", "max", "min")

_HOOK_DICTS = (
    "_propagate_forward_pre_hooks", "_propagate_forward_hooks",
    "_message_forward_pre_hooks", "_message_forward_hooks",
    "_aggregate_forward_pre_hooks", "_aggregate_forward_hooks",
    "_message_and_aggregate_forward_pre_hooks", "_message_and_aggregate_forward_hooks",
)


def node_features(conv: MessagePassing, x: Tensor | PairTensor, in_channels: int) -> PairTensor:
    """``(source, target)`` features of a convolution's input, checked to be ``[num_nodes,
    in_channels]`` (a single tensor is both sides).

    Raises:
        ValueError: naming the shapes; a batch of equal-size graphs ``[B, N, F]`` is refused
            with the flat form to use instead (the layer's batch norm runs over nodes).
    """
    x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
    if x_src.dim() != 2 or x_dst.dim() != 2:
        raise ValueError(
            f"{conv}: node features must be [num_nodes, F], got source {tuple(x_src.shape)} "
            f"and target {tuple(x_dst.shape)}; flatten B graphs of N nodes to [B * N, F] and "
            f"pass neighbours of shape [B, N, k] (or an edge_index over the B * N nodes)"
        )
    if x_src.size(-1) != in_channels or x_dst.size(-1) != in_channels:
        raise ValueError(
            f"{conv}: expected {in_channels} input channels, got source "
            f"{tuple(x_src.shape)} and target {tuple(x_dst.shape)}"
        )
    return x_src, x_dst


def can_fuse(conv: MessagePassing, neighbours: Tensor | None = None) -> bool:
    """Whether a fused neighbour-table path gives what ``conv.propagate`` gives.

    True only for the ``source_to_target`` flow, an aggregation in :data:`FUSED_AGGRS`, no
    explanation masks (``torch_geometric.explain`` sets ``conv.explain``), no feature
    decomposition, no message-passing hooks and, given ``neighbours``, a table with ``k > 0``
    (a reduction over an empty ``k`` axis is not PyG's no-edge zero): anything else goes
    through ``propagate``. Decided from Python attributes and shapes only, so it compiles.
    """
    if neighbours is not None and neighbours.size(-1) == 0:
        return False
    if conv.flow != "source_to_target" or conv.aggr not in FUSED_AGGRS:
        return False
    if conv.explain or conv.decomposed_layers != 1:
        return False
    return not any(getattr(conv, name) for name in _HOOK_DICTS)


def check_neighbours(conv: MessagePassing, neighbours: Tensor, x_src: Tensor, x_dst: Tensor
                     ) -> None:
    """Checks a neighbour table against the features by shape and dtype (no host
    synchronisation).

    ``[num_targets, k]`` tables hold global source ids; ``[B, N, k]`` tables hold ids local to
    each of ``B`` graphs of ``N`` nodes, and need ``B * N`` source and target nodes. Ids are
    range-checked only under :func:`torch_geometric.debug` (the check reads back to the host);
    outside it an id out of range is undefined behaviour (a negative id may wrap around).
    """
    num_src, num_dst = x_src.size(0), x_dst.size(0)
    if neighbours.dtype.is_floating_point or neighbours.dtype == torch.bool:
        raise ValueError(f"{conv}: neighbours must hold integer ids, got {neighbours.dtype}")
    if neighbours.dim() == 3:
        num_graphs, nodes, k = neighbours.shape
        if num_graphs * nodes != num_dst or num_src != num_dst:
            raise ValueError(
                f"{conv}: neighbours of shape {tuple(neighbours.shape)} describe "
                f"{num_graphs} graphs of {nodes} nodes, but x has {num_src} source and "
                f"{num_dst} target nodes"
            )
        local_size = nodes
    elif neighbours.dim() == 2:
        if neighbours.size(0) != num_dst:
            raise ValueError(
                f"{conv}: neighbours of shape {tuple(neighbours.shape)} list "
                f"{neighbours.size(0)} targets, but x has {num_dst} target nodes"
            )
        local_size = num_src
    else:
        raise ValueError(
            f"{conv}: neighbours must have shape [num_targets, k] or [B, N, k], got "
            f"{tuple(neighbours.shape)}"
        )
    if torch_geometric.is_debug_enabled() and neighbours.numel() > 0:
        low, high = int(neighbours.min()), int(neighbours.max())
        if low < 0 or high >= local_size:
            raise ValueError(
                f"{conv}: neighbour ids must lie in [0, {local_size}), found [{low}, {high}]"
            )


def flatten_neighbours(neighbours: Tensor) -> Tensor:
    """A checked neighbour table as ``[num_targets, k]`` global (``int64``) source ids: a
    ``[B, N, k]`` table's local ids are offset by ``b * N``."""
    if neighbours.dim() == 3:
        num_graphs, nodes, k = neighbours.shape
        offset = torch.arange(num_graphs, device=neighbours.device).mul_(nodes).view(-1, 1, 1)
        return (neighbours.long() + offset).view(num_graphs * nodes, k)
    return neighbours.long()


def flat_neighbours(conv: MessagePassing, neighbours: Tensor, x_src: Tensor, x_dst: Tensor
                    ) -> Tensor:
    """:func:`check_neighbours`, then :func:`flatten_neighbours`."""
    check_neighbours(conv, neighbours, x_src, x_dst)
    return flatten_neighbours(neighbours)


def _edge_keys(edge_index: Tensor, num_src: int) -> Tensor:
    """Sorted ``target * num_src + source`` keys: the edge multiset, independent of order."""
    return (edge_index[1].long() * num_src + edge_index[0].long()).sort().values


def check_same_graph(conv: MessagePassing, edge_index: object, neighbours: Tensor) -> None:
    """Under :func:`torch_geometric.debug`, checks that ``edge_index`` (a ``[2, E]`` tensor, or
    a sparse ``adj_t``) holds the edges of the (checked) neighbour table,
    ``neighbours_to_edge_index(neighbours)``, in any order; a no-op otherwise."""
    if not torch_geometric.is_debug_enabled() or edge_index is None:
        return
    if isinstance(edge_index, SparseTensor):
        row, col, _ = edge_index.coo()
        edges = torch.stack([col, row])
    elif isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
        edges = to_edge_index(edge_index)[0].flip(0)  # adj_t rows are targets
    else:
        edges = edge_index
    expected = neighbours_to_edge_index(flatten_neighbours(neighbours))
    num_src = int(max(expected.max(), edges.max())) + 1 if expected.numel() and \
        edges.numel() else 1
    if edges.shape != expected.shape or not torch.equal(_edge_keys(edges, num_src),
                                                        _edge_keys(expected, num_src)):
        raise ValueError(
            f"{conv}: edge_index {tuple(edge_index.shape)} is not the graph of neighbours "
            f"{tuple(neighbours.shape)} (expected the edges of "
            f"neighbours_to_edge_index(neighbours))"
        )


def reduce_neighbours(messages: Tensor, aggr: str) -> Tensor:
    """Reduces ``[num_targets, k, F]`` messages over ``k`` as PyG's ``aggr`` string does."""
    if aggr in ("sum", "add"):
        return messages.sum(dim=1)
    if aggr == "mean":
        return messages.mean(dim=1)
    if aggr == "max":
        return messages.amax(dim=1)
    if aggr == "min":
        return messages.amin(dim=1)
    raise ValueError(f"no fused reduction for aggr='{aggr}'; expected one of {FUSED_AGGRS}")


def check_channels(conv: MessagePassing, in_channels: Any, out_channels: Any) -> None:
    """Refuses PyG's lazy ``-1`` and ``(source, target)`` channel pairs, which these layers do
    not take (``x_j - x_i`` needs both ends in one feature space of a known width)."""
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{conv.__class__.__name__}: {name} must be a positive int, got {value!r} "
                "(lazy -1 and (source, target) pairs are not supported)"
            )


def aggregated_channels(conv: MessagePassing, in_channels: int) -> int:
    """Width of ``conv``'s aggregated messages for ``in_channels``-wide messages (wider for a
    concatenating :class:`~torch_geometric.nn.aggr.MultiAggregation`); refuses set-ups under
    which ``propagate`` cannot produce node-wise aggregates for the layer's update."""
    if conv.aggr_module is None:
        raise ValueError(f"{conv.__class__.__name__} needs an aggregation, got aggr=None")
    if conv.node_dim not in (0, -2):
        raise ValueError(
            f"{conv.__class__.__name__} takes node features [num_nodes, F]: node_dim must be 0 "
            f"or -2, got {conv.node_dim}"
        )
    if isinstance(conv.aggr_module, MultiAggregation):
        return conv.aggr_module.get_out_channels(in_channels)
    return in_channels


class NoFeatureDecomposition:
    """Mixin for a :class:`MessagePassing` layer that refuses ``decomposed_layers > 1`` with
    its reason (``DECOMPOSITION_REFUSAL``), at construction or when set later, instead of
    failing inside ``propagate``."""

    DECOMPOSITION_REFUSAL = "PyG splits only plain feature tensors, not (source, target) pairs"

    @property
    def decomposed_layers(self) -> int:
        return self._decomposed_layers

    @decomposed_layers.setter
    def decomposed_layers(self, decomposed_layers: int) -> None:
        if decomposed_layers != 1:
            raise ValueError(
                f"{type(self).__name__} does not support decomposed_layers="
                f"{decomposed_layers}: {self.DECOMPOSITION_REFUSAL}"
            )
        MessagePassing.decomposed_layers.fset(self, decomposed_layers)


class ExactExtremumAggregation:
    """Mixin for a :class:`MessagePassing` layer whose ``aggr='max'``/``'min'`` goes through
    :func:`scatter_extremum`: the values of PyG's aggregation, with the gradient of the fused
    ``amax``/``amin`` paths also when the extremum is exactly 0 (PyG scatters into zeros with
    ``include_self=False``, and torch's backward then halves a 0 maximum's gradient)."""

    def aggregate(self, inputs: Tensor, index: Tensor, ptr: Tensor | None = None,
                  dim_size: int | None = None) -> Tensor:
        if self.aggr in ("max", "min") and inputs.dim() == 2:
            return scatter_extremum(inputs, index, dim_size, self.aggr)
        return super().aggregate(inputs, index, ptr=ptr, dim_size=dim_size)


def scatter_extremum(src: Tensor, index: Tensor, dim_size: int | None, reduce: str) -> Tensor:
    """Per-target ``reduce`` (``'max'`` or ``'min'``) of edge rows ``src`` ``[E, F]`` grouped by
    ``index`` ``[E]``; a target without edges gets 0, as in PyG. The buffer starts at -inf/+inf,
    so the gradient reaches exactly the edges that attain the extremum."""
    index = index.long()  # PyG accepts int32 edge indices; index_fill_ needs int64
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() else 0
    fill = float("-inf") if reduce == "max" else float("inf")
    out = src.new_full((dim_size, src.size(1)), fill).scatter_reduce(
        0, index.view(-1, 1).expand_as(src), src, "amax" if reduce == "max" else "amin",
        include_self=True,
    )
    reached = torch.zeros(dim_size, dtype=torch.bool, device=src.device).index_fill_(
        0, index, True)
    return torch.where(reached.unsqueeze(1), out, out.new_zeros(()))
