from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj, PairTensor

from pyg_fer.nn.conv._regular import regular_neighbours

GATES = ("scalar", "channel")


class RGConv(MessagePassing):
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
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)` or
          :math:`((|\mathcal{V}_s|, F), (|\mathcal{V}_t|, F))` if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)` or a sparse adjacency ``adj_t``
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
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.gate = gate
        self.gate_lin = nn.Linear(in_channels, 1 if gate == "scalar" else in_channels)
        self.update_lin = nn.Linear(2 * in_channels, out_channels)
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.GELU()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.gate_lin.reset_parameters()
        self.update_lin.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, x: Union[Tensor, PairTensor], edge_index: Adj) -> Tensor:
        if isinstance(x, Tensor):
            x = (x, x)
        x_src, x_dst = x
        if x_src.size(-1) != self.in_channels or x_dst.size(-1) != self.in_channels:
            raise ValueError(
                f"{self}: expected {self.in_channels} input channels, got source "
                f"{tuple(x_src.shape)} and target {tuple(x_dst.shape)}"
            )
        # Gate logits per node (no bias); the bias is added once per edge.
        w = self.gate_lin.weight
        h: Tuple[Tensor, Tensor] = (x_src @ w.t(), x_dst @ w.t())
        nbr = regular_neighbours(edge_index, x_dst.size(0))
        if nbr is not None:  # k-NN layout: a gather and a sum over k, no scatter
            aggr = self._aggregate_regular(x_src, x_dst, h, nbr)
        else:
            # propagate_type: (x: PairTensor, h: PairTensor)
            aggr = self.propagate(edge_index, x=x, h=h)
        return self.act(self.norm(self.update_lin(torch.cat([x_dst, aggr], dim=-1))))

    def _aggregate_regular(
        self, x_src: Tensor, x_dst: Tensor, h: Tuple[Tensor, Tensor], nbr: Tensor
    ) -> Tensor:
        # sum_j g_ij (x_j - x_i) = sum_j g_ij x_j - x_i sum_j g_ij, with x_j gathered once.
        weight = torch.sigmoid(h[0][nbr] - h[1].unsqueeze(1) + self.gate_lin.bias)
        x_j = x_src[nbr]  # [num_targets, k, F]
        if self.gate == "scalar":
            weighted = torch.bmm(weight.transpose(1, 2), x_j).squeeze(1)
        else:
            weighted = (weight * x_j).sum(dim=1)
        return weighted - x_dst * weight.sum(dim=1)

    def message(self, x_i: Tensor, x_j: Tensor, h_i: Tensor, h_j: Tensor) -> Tensor:
        weight = torch.sigmoid(h_j - h_i + self.gate_lin.bias)
        return weight * (x_j - x_i)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"gate={self.gate})"
        )
