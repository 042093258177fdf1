"""The RDGCN block of Face2Nodes (Eq. 9-10) and its parts: FFN, DropPath, dilation schedule."""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn as nn
import torch_geometric
from torch import Tensor
from torch_geometric.nn import EdgeConv

from pyg_fer.nn.conv import MRConv, RGConv
from pyg_fer.nn.knn import BACKENDS, dilated_knn, neighbours_to_edge_index

__all__ = ["FFN", "GRAPH_CONVS", "DropPath", "RDGCNBlock", "dilation_schedule"]



def _edge_conv(dim: int, gate: str) -> nn.Module:
    mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.BatchNorm1d(dim), nn.GELU())
    return EdgeConv(nn=mlp, aggr="max")


#: The graph convolution of an :class:`RDGCNBlock` by name: ``(dim, gate) -> layer`` mapping
#: :math:`D \to D`. A layer whose ``forward`` takes ``neighbours=`` gets the ``[B N, k]``
#: neighbour table (RG-/MR-Conv pick their own fused path); any other gets an ``edge_index``.
_CONV_BUILDERS = {
    "rg": lambda dim, gate: RGConv(dim, dim, gate=gate),
    "mr": lambda dim, gate: MRConv(dim, dim),
    "edge": _edge_conv,
}
#: The names :class:`RDGCNBlock` accepts as ``conv``.
GRAPH_CONVS = tuple(_CONV_BUILDERS)


def dilation_schedule(depth: int, num_nodes: int, k: int, loop: bool = False) -> list[int]:
    r"""Dilation :math:`d_l = \lceil l / 4 \rceil` of block :math:`l = 1, \dots, L` (Face2Nodes
    §4.3), capped so that a node still has :math:`k \cdot d_l` candidate neighbours.

    This equals ViG's ``min(idx // 4 + 1, max_dilation)`` for the 0-based block index
    ``idx = l - 1``, with the cap ``max_dilation = (num_nodes - 1) // k`` (``num_nodes // k``
    when a node may be its own neighbour), e.g. ``[1, 1, 1, 1, 2, 2, 2, 2]`` for Face2Nodes.

    Raises:
        ValueError: ``depth < 1`` or a graph too small for ``k`` neighbours.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    candidates = num_nodes - (0 if loop else 1)
    if k < 1 or k > candidates:
        raise ValueError(
            f"k={k} neighbours need at least {k + (0 if loop else 1)} nodes, got {num_nodes}"
        )
    max_dilation = candidates // k
    return [min(math.ceil(layer / 4), max_dilation) for layer in range(1, depth + 1)]


class DropPath(nn.Module):
    r"""Stochastic depth: in training, zero a whole sample's residual branch with probability
    :math:`p` and scale the kept ones by :math:`1 / (1 - p)`; identity in evaluation.

    Args:
        p (float): drop probability. (default: :obj:`0.0`)
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _LinearBN(nn.Module):
    """``Linear`` + ``BatchNorm1d`` applied to ``[B, N, C]`` through its flat ``[B*N, C]`` view
    (the 1×1 convolution + BatchNorm of ViG's ``fc1``/``fc2``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_channels, out_channels)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        y = self.norm(self.lin(x.reshape(-1, shape[-1])))
        return y.view(*shape[:-1], y.shape[-1])


class FFN(nn.Module):
    r"""The two-layer MLP :math:`\mathcal{M}` of Face2Nodes Eq. (10) (ViG's FFN), with residual:

    .. math::
        X^{l+1} = \mathrm{BN}(W_2\,\mathrm{GELU}(\mathrm{BN}(W_1 Z^l))) + Z^l

    Args:
        dim (int): node feature size :math:`D`.
        hidden_ratio (float): hidden size over :math:`D` (the paper's :math:`4`).
            (default: :obj:`4.0`)
        drop_path (float): stochastic-depth probability of the branch. (default: :obj:`0.0`)

    Shapes:
        - **input / output:** :math:`(B, N, D)` (or :math:`(B N, D)`)
    """

    def __init__(self, dim: int, hidden_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * hidden_ratio)
        self.fc1 = _LinearBN(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = _LinearBN(hidden, dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.fc2(self.act(self.fc1(x))))


class RDGCNBlock(nn.Module):
    r"""One relation-aware dynamic graph convolution block of `"Face2Nodes"
    <https://doi.org/10.1016/j.ins.2023.119640>`_ (§3.3, Eq. 9-10).

    A dilated k-NN graph is rebuilt from the transformed features in every block, so each
    block sees its own graph :math:`\mathcal{G}^l`:

    .. math::
        Z^l &= F^l_{out}\big(\mathrm{GConv}(F^l_{in}(X^l), \mathcal{G}^l)\big) + X^l
        \qquad (9)

        X^{l+1} &= \mathcal{M}(Z^l) + Z^l \qquad (10)

    where :math:`F_{in}`, :math:`F_{out}` are fully connected layers with BatchNorm,
    :math:`\mathcal{G}^l` = dilated k-NN graph of :math:`F_{in}(X^l)` (Eq. 5), GConv is RG-Conv
    (Eq. 7-8, its update already ends in BatchNorm + GELU), MR-Conv or PyG's EdgeConv, all
    mapping :math:`D \to D`, and :math:`\mathcal{M}` is :class:`FFN` with :math:`4D` hidden.

    Args:
        dim (int): node feature size :math:`D`.
        k (int): neighbours per node. (default: :obj:`9`)
        dilation (int): dilation rate :math:`d` of this block. (default: :obj:`1`)
        conv (str): ``"rg"`` (RG-Conv), ``"mr"`` (MR-Conv) or ``"edge"``
            (:class:`torch_geometric.nn.EdgeConv` with Linear(:math:`2D \to D`) + BatchNorm +
            GELU and max aggregation). (default: :obj:`"rg"`)
        gate (str): RG-Conv gate, ``"scalar"`` or ``"channel"``. (default: :obj:`"scalar"`)
        ffn_ratio (float): FFN hidden size over :math:`D`. (default: :obj:`4.0`)
        drop_path (float): stochastic-depth probability of both branches. (default: :obj:`0.0`)
        knn_backend (str): backend of :func:`~pyg_fer.nn.dilated_knn_graph`.
            (default: :obj:`"auto"`)
        cosine (bool): rank neighbours by cosine instead of Euclidean distance.
            (default: :obj:`False`, the paper's Euclidean distance)
        loop (bool): a node may be its own neighbour. (default: :obj:`False`)
        stochastic (bool): stochastic dilation in training (DeepGCNs/ViG).
            (default: :obj:`False`)
        epsilon (float): probability of a stochastic dilation draw. (default: :obj:`0.2`)

    Shapes:
        - **input / output:** node features :math:`(B, N, D)`; ``last_neighbours``
          :math:`(B, N, k)` holds the graph of the last forward (ids local to each face),
          ``last_edge_index`` :math:`(2, B N k)` the same graph with node ids ``b * N + n``.
    """

    def __init__(
        self,
        dim: int,
        k: int = 9,
        dilation: int = 1,
        conv: str = "rg",
        gate: str = "scalar",
        ffn_ratio: float = 4.0,
        drop_path: float = 0.0,
        knn_backend: str = "auto",
        cosine: bool = False,
        loop: bool = False,
        stochastic: bool = False,
        epsilon: float = 0.2,
    ) -> None:
        super().__init__()
        if conv not in GRAPH_CONVS:
            raise ValueError(f"unknown graph conv '{conv}'; expected one of {GRAPH_CONVS}")
        if knn_backend not in BACKENDS:
            raise ValueError(f"unknown knn_backend '{knn_backend}'; expected one of {BACKENDS}")
        self.dim = dim
        self.k = k
        self.dilation = dilation
        self.conv_type = conv
        self.knn_backend = knn_backend
        self.cosine = cosine
        self.loop = loop
        self.stochastic = stochastic
        self.epsilon = epsilon
        self.fc_in = _LinearBN(dim, dim)
        self.conv: nn.Module = _CONV_BUILDERS[conv](dim, gate)
        self._takes_table = "neighbours" in inspect.signature(self.conv.forward).parameters
        self.fc_out = _LinearBN(dim, dim)
        self.drop_path = DropPath(drop_path)
        self.ffn = FFN(dim, ffn_ratio, drop_path)
        self.last_neighbours: Tensor | None = None

    @property
    def last_edge_index(self) -> Tensor | None:
        """The graph of the last forward as ``edge_index`` ``[2, B N k]`` (node ids
        ``b * N + n``), or :obj:`None` before the first forward."""
        if self.last_neighbours is None:
            return None
        return neighbours_to_edge_index(self.last_neighbours)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected node features [B, N, {self.dim}], got {tuple(x.shape)}")
        b, n, d = x.shape
        y = self.fc_in(x)
        eps = self.epsilon if (self.stochastic and self.training) else 0.0
        with torch.no_grad():  # the k-NN selection is not differentiable
            # [B, N, k] local ids; the finite-feature check (a host sync) only when debugging.
            nbr = dilated_knn(
                y.detach(), self.k, self.dilation, loop=self.loop, cosine=self.cosine,
                backend=self.knn_backend, epsilon=eps,
                validate=torch_geometric.is_debug_enabled(),
            )
        self.last_neighbours = nbr
        flat = y.reshape(b * n, d)
        if self._takes_table:
            y = self.conv(flat, neighbours=nbr)
        else:
            y = self.conv(flat, neighbours_to_edge_index(nbr))
        x = x + self.drop_path(self.fc_out(y.view(b, n, d)))
        return self.ffn(x)

    def extra_repr(self) -> str:
        return f"{self.dim}, conv={self.conv_type}, k={self.k}, dilation={self.dilation}"
