r"""Adaptive graph-based feature normalisation (AGFN, Du et al., §3.2-3.3)."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from pyg_fer.nn import _gather
from pyg_fer.nn.poisson import PoissonGraph

EVAL_GRAPHS = ("expected", "identity", "bank")


class AGFN(nn.Module):
    r"""Normalises the features of a mini-batch over a sampled Poisson graph (AGFN Eq. 6, 10).

    A :class:`~pyg_fer.nn.PoissonGraph` links similar samples of the batch, and a
    :class:`torch_geometric.nn.GCNConv` mixes their features:

    .. math::
        \hat{\mathbf{X}} = \tilde{\mathbf{D}}^{-1/2} (\mathbf{A} + \mathbf{I})
        \tilde{\mathbf{D}}^{-1/2} \mathbf{X} \mathbf{W}, \qquad
        \tilde{D}_{ii} = 1 + \sum_j A_{ij}.

    In training, :math:`S` graphs are drawn (Eq. 10) and the outputs are returned stacked with
    ``return_samples=True``, so that the loss can be averaged over the draws as Eq. 10 does
    (what the engine does), or averaged (the plain forward). In evaluation the output is
    deterministic:

    - ``eval_graph="identity"`` (default): no edges,
      :math:`\hat{\mathbf{X}} = \mathbf{X}\mathbf{W}`; each prediction depends on its own
      image only (single-image inference). Chosen from measurements (``docs/design.md``):
      batch-independent, and as accurate as ``"bank"`` or better in every model measured.
    - ``eval_graph="expected"``: the expected graph over the test batch,
      :math:`A_{ij} = P_{ij}` (the authors' public code builds the test graph over the batch).
      The prediction for one sample depends on the rest of the batch, its size and order.
    - ``eval_graph="bank"``: the other side of the graph is a bank of training features instead
      of the rest of the test batch, so a prediction depends on its own image and the trained
      model only. Every training forward pushes the batch's detached input features into a
      FIFO buffer :math:`\mathbf{Z} \in \mathbb{R}^{M \times F}` (the last ``bank_size``
      training features, a registered buffer, so it is saved in checkpoints). A test sample
      :math:`\mathbf{x}_i` is normalised as node :math:`i` of the expected graph over
      :math:`\{\mathbf{x}_i\} \cup \mathbf{Z}` — a training-like batch made of the test sample
      and the bank — with :math:`P` of the sampler (Eq. 3-4) as edge weights:

      .. math::
          \hat{\mathbf{x}}_i = \frac{1}{d_i} \mathbf{x}_i \mathbf{W} + \sum_{m=1}^{M}
          \frac{P(\mathbf{x}_i, \mathbf{z}_m)}{\sqrt{d_i\, d_{im}}} \mathbf{z}_m \mathbf{W}
          + \mathbf{b}, \qquad
          d_i = 1 + \sum_m P(\mathbf{x}_i, \mathbf{z}_m), \qquad
          d_{im} = 1 + \sum_{m' \neq m} P(\mathbf{z}_m, \mathbf{z}_{m'})
          + P(\mathbf{z}_m, \mathbf{x}_i),

      the GCN normalisation of Eq. 6 (:math:`\tilde{D}_{ii} = 1 + \sum_j A_{ij}`) on that
      graph, evaluated at the test node. Only the valid entries of the bank take part; with an
      empty bank (no training forward yet) the layer falls back to the identity graph.

    **Global batch** (``global_graph=True``, for DistributedDataParallel): in training the
    features of every process are gathered with a differentiable all-gather, one graph is drawn
    over the whole (global) batch on rank 0 and broadcast, and every process computes the GCN's
    output for its own samples (messages into its rows only, degrees from the whole graph).
    The gradient of a sample's features is the sum of what every process's loss sends it,
    delivered to the process that owns the sample, so with DDP's gradient averaging the update
    is that of one process holding the global batch. The bank fills from the global batch
    (identical on every process). Evaluation stays per-process. Without an initialised process
    group of more than one process it changes nothing.

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
        eval_graph (str, optional): ``"identity"``, ``"expected"`` or ``"bank"``. (default:
            :obj:`"identity"`)
        sampling (str, optional): See :class:`~pyg_fer.nn.PoissonGraph`. (default:
            :obj:`"independent"`)
        symmetric (bool, optional): See :class:`~pyg_fer.nn.PoissonGraph`. (default:
            :obj:`False`)
        straight_through (str, optional): See :class:`~pyg_fer.nn.PoissonGraph`. (default:
            :obj:`"rate"`, the paper's Eq. 11/14)
        edge_grad_to_features (bool, optional): See :class:`~pyg_fer.nn.PoissonGraph`.
            (default: :obj:`False`, Eq. 10)
        global_graph (bool, optional): Build the training graph over the batch of every
            process (see above). (default: :obj:`False`)
        bias (bool, optional): Bias of the GCN layer. (default: :obj:`True`)
        bank_size (int, optional): Training features :math:`M` kept for
            ``eval_graph="bank"``; ``0`` keeps none (and forbids ``"bank"``). With
            :math:`M = B - 1` a test sample and the bank form a graph of the training batch
            size :math:`B`. (default: :obj:`255`, the paper's batch of 256)

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
        eval_graph: str = "identity",
        sampling: str = "independent",
        symmetric: bool = False,
        bias: bool = True,
        bank_size: int = 255,
        straight_through: str = "rate",
        edge_grad_to_features: bool = False,
        global_graph: bool = False,
    ) -> None:
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if bank_size < 0:
            raise ValueError(f"bank_size must be >= 0, got {bank_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_samples = num_samples
        self.bank_size = bank_size  # set before eval_graph, which checks 'bank' against it
        self.eval_graph = eval_graph
        self.graph = PoissonGraph(alpha, beta, sampling=sampling, symmetric=symmetric,
                                  straight_through=straight_through,
                                  edge_grad_to_features=edge_grad_to_features)
        self.global_graph = bool(global_graph)
        # False: the identity graph in training and evaluation (the baseline of the
        # "pre-train, then insert AGFN" recipe, with the GCN weight W already in place).
        self.use_graph = True
        self.gcn = GCNConv(in_channels, out_channels, add_self_loops=True, normalize=True,
                           bias=bias)
        # FIFO of detached training features; bank_ptr: next slot, bank_count: valid rows.
        self.register_buffer("bank", torch.zeros(bank_size, in_channels))
        self.register_buffer("bank_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.long))
        self.reset_parameters()

    @property
    def eval_graph(self) -> str:
        """The evaluation graph, ``"identity"``, ``"expected"`` or ``"bank"``; it may be
        switched after training (a checkpoint records the current one)."""
        return self._eval_graph

    @eval_graph.setter
    def eval_graph(self, value: str) -> None:
        if value not in EVAL_GRAPHS:
            raise ValueError(f"unknown eval_graph '{value}'; expected one of {EVAL_GRAPHS}")
        if value == "bank" and self.bank_size == 0:
            raise ValueError("eval_graph='bank' needs bank_size > 0 (this layer keeps no bank)")
        self._eval_graph = value

    def reset_parameters(self) -> None:
        self.graph.reset_parameters()
        self.gcn.reset_parameters()
        self.reset_bank()

    def reset_bank(self) -> None:
        """Empties the feature bank."""
        self.bank.zero_()
        self.bank_ptr.zero_()
        self.bank_count.zero_()

    @torch.no_grad()
    def update_bank(self, x: Tensor) -> None:
        """Pushes the rows of ``x`` into the FIFO bank (the oldest rows are overwritten)."""
        m = self.bank_size
        if m == 0:
            return
        x = x.detach()[-m:].to(self.bank.dtype)
        n = x.size(0)
        slots = (self.bank_ptr + torch.arange(n, device=x.device)) % m
        self.bank[slots] = x
        self.bank_ptr.copy_((self.bank_ptr + n) % m)
        self.bank_count.copy_(torch.clamp(self.bank_count + n, max=m))

    def bank_features(self) -> Tensor:
        """The valid rows of the bank, ``[min(seen, M), F]`` (in slot order)."""
        return self.bank[: int(self.bank_count)]

    def forward(self, x: Tensor, return_samples: bool = False) -> Tensor:
        if x.dim() != 2 or x.size(-1) != self.in_channels:
            raise ValueError(
                f"{self}: expected features of shape [B, {self.in_channels}], "
                f"got {tuple(x.shape)}"
            )
        if self.training and self.global_graph and _gather.world_size() > 1:
            return self._forward_global(x, return_samples)
        if self.training:
            self.update_bank(x)
        if self.training and self.use_graph:
            outs = [self._convolve(x, sample=True) for _ in range(self.num_samples)]
            stacked = torch.stack(outs)
            return stacked if return_samples else stacked.mean(0)
        if self.use_graph and self.eval_graph == "bank" and self.bank_size > 0:
            out = self._convolve_bank(x)
        elif self.use_graph and self.eval_graph == "expected" and x.size(0) > 1:
            out = self._convolve(x, sample=False)
        else:
            out = self._identity(x)
        return out.unsqueeze(0) if return_samples else out

    def _identity(self, x: Tensor) -> Tensor:
        empty = torch.empty(2, 0, dtype=torch.long, device=x.device)
        return self.gcn(x, empty)

    def _forward_global(self, x: Tensor, return_samples: bool) -> Tensor:
        """Training forward over the batch of every process (``global_graph=True``)."""
        nodes, offset = _gather.all_gather_rows(x)
        self.update_bank(nodes)
        if not self.use_graph:
            out = self._identity(x)
            return out.unsqueeze(0) if return_samples else out
        n = nodes.size(0)
        draws = None
        with torch.no_grad():
            if torch.distributed.get_rank() == 0:
                prob = self.graph.probabilities(nodes)
                draws = torch.stack([self.graph._draw(prob) for _ in range(self.num_samples)])
            draws = _gather.broadcast_draw(draws, (self.num_samples, n, n), x.device, x.dtype)
        own = slice(offset, offset + x.size(0))
        stacked = torch.stack([self._convolve_rows(nodes, a, own) for a in draws])
        return stacked if return_samples else stacked.mean(0)

    def _convolve_rows(self, nodes: Tensor, adjacency: Tensor, rows: slice) -> Tensor:
        """Rows ``rows`` of the GCN over the sampled graph on ``nodes``: what ``self.gcn``
        computes there (Eq. 6, degrees from the whole graph), with messages only into those
        rows — each process computes its own samples' outputs, not all ``N``."""
        graph = self.graph(nodes, sample=True, adjacency=adjacency)
        gcn = self.gcn
        edge_index, edge_weight = gcn_norm(graph.edge_index, graph.edge_weight, nodes.size(0),
                                           gcn.improved, gcn.add_self_loops, gcn.flow,
                                           nodes.dtype)
        target = edge_index[1] if gcn.flow == "source_to_target" else edge_index[0]
        into = (target >= rows.start) & (target < rows.stop)
        out = self.gcn.propagate(edge_index[:, into], x=self.gcn.lin(nodes),
                                 edge_weight=edge_weight[into])[rows]
        return out if self.gcn.bias is None else out + self.gcn.bias

    def _convolve(self, x: Tensor, sample: bool, adjacency: Tensor | None = None) -> Tensor:
        graph = self.graph(x, sample=sample, adjacency=adjacency)
        return self.gcn(x, graph.edge_index, graph.edge_weight)

    def _convolve_bank(self, x: Tensor) -> Tensor:
        """Each row of ``x`` as node ``i`` of the expected graph over ``{x_i} ∪ bank``.

        The whole bank takes part with the rows not filled yet masked out of every sum (no
        host-side read of ``bank_count``): with an empty bank this is the identity graph."""
        bank = self.bank.to(x.dtype)
        valid = (torch.arange(self.bank_size, device=x.device) < self.bank_count).to(x.dtype)
        p_xz = self.graph.probabilities(x, bank) * valid  # [B, M]
        bank_deg = 1.0 + (self.graph.probabilities(bank) * valid).sum(1)  # [M], bank-to-bank
        d_x = 1.0 + p_xz.sum(1, keepdim=True)  # [B, 1]
        d_z = bank_deg.unsqueeze(0) + p_xz  # [B, M]: the test node adds P(z_m, x_i)
        coef = p_xz * (d_x * d_z).rsqrt()
        out = self.gcn.lin(x) / d_x + coef @ self.gcn.lin(bank)
        return out if self.gcn.bias is None else out + self.gcn.bias

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
            f"num_samples={self.num_samples}, eval_graph={self.eval_graph}"
            + (f", bank_size={self.bank_size}" if self.eval_graph == "bank" else "")
            + (", global_graph=True" if self.global_graph else "") + ")"
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
            eye = torch.eye(x.size(0), dtype=torch.bool, device=x.device)
            linked = ((xn @ xn.t()) > self.threshold) & ~eye  # out of place: exportable
            target, source = linked.nonzero(as_tuple=True)
        return torch.stack([source, target])

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"threshold={self.threshold})"
        )
