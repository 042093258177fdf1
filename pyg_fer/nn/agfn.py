r"""Adaptive graph-based feature normalisation (AGFN, Du et al., §3.2-3.3)."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from pyg_fer.nn.poisson import PoissonGraph

EVAL_GRAPHS = ("expected", "identity")


class AGFN(nn.Module):
    r"""Normalises the features of a mini-batch over a sampled Poisson graph (AGFN Eq. 6, 10).

    A :class:`~pyg_fer.nn.PoissonGraph` links similar samples of the batch, and a
    :class:`torch_geometric.nn.GCNConv` mixes their features:

    .. math::
        \hat{\mathbf{X}} = \tilde{\mathbf{D}}^{-1/2} (\mathbf{A} + \mathbf{I})
        \tilde{\mathbf{D}}^{-1/2} \mathbf{X} \mathbf{W}, \qquad
        \tilde{D}_{ii} = 1 + \sum_j A_{ij}.

    In training, :math:`S` graphs are drawn (Eq. 10) and the outputs are returned averaged, or
    stacked with ``return_samples=True`` so that the loss can be averaged over the draws as in
    Eq. 10. In evaluation the output is deterministic:

    - ``eval_graph="expected"`` (default): the expected graph, :math:`A_{ij} = P_{ij}`. It is the
      graph whose draws the network was trained on, so the features are normalised the way
      they were in training; the prediction for one sample depends on the rest of the batch.
    - ``eval_graph="identity"``: no edges, :math:`\hat{\mathbf{X}} = \mathbf{X}\mathbf{W}`; each
      prediction depends on its own image only (single-image inference).

    The parameters split for coordinate descent (§3.3): :meth:`graph_parameters` yields the
    sampler's :math:`\alpha, \beta` (learning rate :math:`\gamma_2`),
    :meth:`network_parameters` the GCN weights (:math:`\gamma_1`).

    Args:
        in_channels (int): Feature size :math:`F` of each sample.
        out_channels (int): Output size.
        alpha (float, optional): Initial :math:`\alpha` of the sampler. (default: :obj:`1.4`)
        beta (float, optional): Initial :math:`\beta` of the sampler. (default: :obj:`0.0`)
        num_samples (int, optional): Graphs :math:`S` drawn per training step. (default:
            :obj:`1`)
        eval_graph (str, optional): ``"expected"`` or ``"identity"``. (default:
            :obj:`"expected"`)
        sampling (str, optional): See :class:`~pyg_fer.nn.PoissonGraph`. (default:
            :obj:`"independent"`)
        symmetric (bool, optional): See :class:`~pyg_fer.nn.PoissonGraph`. (default:
            :obj:`False`)
        bias (bool, optional): Bias of the GCN layer. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(B, F)`
        - **output:** :math:`(B, F')`, or :math:`(S, B, F')` with ``return_samples=True``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        alpha: float = 1.4,
        beta: float = 0.0,
        num_samples: int = 1,
        eval_graph: str = "expected",
        sampling: str = "independent",
        symmetric: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if eval_graph not in EVAL_GRAPHS:
            raise ValueError(f"unknown eval_graph '{eval_graph}'; expected one of {EVAL_GRAPHS}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_samples = num_samples
        self.eval_graph = eval_graph
        self.graph = PoissonGraph(alpha, beta, sampling=sampling, symmetric=symmetric)
        # False: the identity graph in training and evaluation (the baseline of the
        # "pre-train, then insert AGFN" recipe, with the GCN weight W already in place).
        self.use_graph = True
        self.gcn = GCNConv(in_channels, out_channels, add_self_loops=True, normalize=True,
                           bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.graph.reset_parameters()
        self.gcn.reset_parameters()

    def forward(self, x: Tensor, return_samples: bool = False) -> Tensor:
        if x.dim() != 2 or x.size(-1) != self.in_channels:
            raise ValueError(
                f"{self}: expected features of shape [B, {self.in_channels}], "
                f"got {tuple(x.shape)}"
            )
        if self.training and self.use_graph:
            outs = [self._convolve(x, sample=True) for _ in range(self.num_samples)]
            stacked = torch.stack(outs)
            return stacked if return_samples else stacked.mean(0)
        if not self.use_graph or self.eval_graph == "identity" or x.size(0) == 1:
            empty = torch.empty(2, 0, dtype=torch.long, device=x.device)
            out = self.gcn(x, empty)
        else:
            out = self._convolve(x, sample=False)
        return out.unsqueeze(0) if return_samples else out

    def _convolve(self, x: Tensor, sample: bool) -> Tensor:
        graph = self.graph(x, sample=sample)
        return self.gcn(x, graph.edge_index, graph.edge_weight)

    def graph_parameters(self) -> Iterator[nn.Parameter]:
        """The sampler's :math:`\\alpha, \\beta` (the γ2 step of coordinate descent)."""
        return iter([self.graph.alpha, self.graph.beta])

    def network_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter except :math:`\\alpha, \\beta` (the γ1 step)."""
        graph_ids = {id(p) for p in self.graph_parameters()}
        return (p for p in self.parameters() if id(p) not in graph_ids)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"num_samples={self.num_samples}, eval_graph={self.eval_graph})"
        )


class CosineThresholdGCN(nn.Module):
    r"""The "Baseline-GCN" of AGFN's Table 1: samples of the batch whose cosine similarity
    exceeds a fixed threshold are linked (the threshold-based staircase function the Poisson
    generator replaces), then a GCN (Eq. 6) normalises their features:

    .. math::
        A_{ij} = [\cos(\mathbf{x}_i, \mathbf{x}_j) > \tau], \ i \neq j, \qquad
        \hat{\mathbf{X}} = \tilde{\mathbf{D}}^{-1/2} (\mathbf{A} + \mathbf{I})
        \tilde{\mathbf{D}}^{-1/2} \mathbf{X} \mathbf{W}.

    The graph is the same in training and evaluation and has no learnable parameters.

    Args:
        in_channels (int): Feature size of each sample.
        out_channels (int): Output size.
        threshold (float, optional): :math:`\tau`. (default: :obj:`0.5`, the paper's)

    Shapes:
        - **input:** :math:`(B, F)`
        - **output:** :math:`(B, F')`
    """

    def __init__(self, in_channels: int, out_channels: int, threshold: float = 0.5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.threshold = threshold
        self.gcn = GCNConv(in_channels, out_channels, add_self_loops=True, normalize=True)

    def reset_parameters(self) -> None:
        self.gcn.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.size(-1) != self.in_channels:
            raise ValueError(
                f"{self}: expected features of shape [B, {self.in_channels}], "
                f"got {tuple(x.shape)}"
            )
        return self.gcn(x, self.edge_index(x))

    def edge_index(self, x: Tensor) -> Tensor:
        """``[2, E]`` the linked pairs ``j -> i`` (no self-pairs)."""
        with torch.no_grad():
            xn = torch.nn.functional.normalize(x, dim=-1)
            linked = (xn @ xn.t()) > self.threshold
            linked.fill_diagonal_(False)
            target, source = linked.nonzero(as_tuple=True)
        return torch.stack([source, target])

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"threshold={self.threshold})"
        )
