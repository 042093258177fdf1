"""What the convolutions' fused k-NN paths share: when a fused path is the same layer as
``propagate``, the neighbour-table checks, and the reduction over the dense ``k`` axis."""

from __future__ import annotations

import torch
import torch_geometric
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.aggr import MultiAggregation

from pyg_fer.nn.knn import neighbours_to_edge_index

# Aggregations a fused path computes exactly as PyG's string aggregations do.
FUSED_AGGRS = ("sum", "add", "mean", "max", "min")

_HOOK_DICTS = (
    "_propagate_forward_pre_hooks", "_propagate_forward_hooks",
    "_message_forward_pre_hooks", "_message_forward_hooks",
    "_aggregate_forward_pre_hooks", "_aggregate_forward_hooks",
    "_message_and_aggregate_forward_pre_hooks", "_message_and_aggregate_forward_hooks",
)


def can_fuse(conv: MessagePassing) -> bool:
    """Whether a fused neighbour-table path gives what ``conv.propagate`` gives.

    True only for the ``source_to_target`` flow, an aggregation in :data:`FUSED_AGGRS`, no
    explanation masks (``torch_geometric.explain`` sets ``conv.explain``), no feature
    decomposition and no message-passing hooks: anything that needs per-edge messages goes
    through ``propagate``. Decided from Python attributes only, so it compiles.
    """
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
    range-checked only under :func:`torch_geometric.debug` (the check reads back to the host).
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


def check_same_graph(conv: MessagePassing, edge_index: object, neighbours: Tensor) -> None:
    """Under :func:`torch_geometric.debug`, checks that ``edge_index`` is the graph of the
    (checked) neighbour table, ``neighbours_to_edge_index(neighbours)``; a no-op otherwise."""
    if not torch_geometric.is_debug_enabled() or not isinstance(edge_index, Tensor):
        return
    expected = neighbours_to_edge_index(flatten_neighbours(neighbours))
    if edge_index.shape != expected.shape or not bool((edge_index == expected).all()):
        raise ValueError(
            f"{conv}: edge_index {tuple(edge_index.shape)} is not the graph of neighbours "
            f"{tuple(neighbours.shape)} (expected neighbours_to_edge_index(neighbours))"
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
