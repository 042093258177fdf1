from __future__ import annotations

from typing import Union

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import Adj, PairTensor

from pyg_fer.nn.conv._regular import regular_neighbours


class MRConv(MessagePassing):
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
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)` or
          :math:`((|\mathcal{V}_s|, F), (|\mathcal{V}_t|, F))` if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)` or a sparse adjacency ``adj_t``
        - **output:** node features :math:`(|\mathcal{V}|, F')` or
          :math:`(|\mathcal{V}_t|, F')` if bipartite
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        kwargs.setdefault("aggr", "max")
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.update_lin = nn.Linear(2 * in_channels, out_channels)
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.GELU()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.update_lin.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, x: Union[Tensor, PairTensor], edge_index: Adj) -> Tensor:
        if isinstance(x, Tensor):
            x = (x, x)
        if x[0].size(-1) != self.in_channels or x[1].size(-1) != self.in_channels:
            raise ValueError(
                f"{self}: expected {self.in_channels} input channels, got source "
                f"{tuple(x[0].shape)} and target {tuple(x[1].shape)}"
            )
        nbr = regular_neighbours(edge_index, x[1].size(0))
        if nbr is not None:  # k-NN layout: max over a dense k axis, no scatter
            aggr = x[0][nbr].amax(dim=1) - x[1]
        else:
            # propagate_type: (x: PairTensor)
            aggr = self.propagate(edge_index, x=x)
        return self.act(self.norm(self.update_lin(torch.cat([x[1], aggr], dim=-1))))

    def message(self, x_i: Tensor, x_j: Tensor) -> Tensor:
        return x_j - x_i

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"
