r"""The Poisson graph generator of AGFN (Du et al., "Adaptive Graph-Based Feature Normalization
for Facial Expression Recognition", §3.1, Eq. 2-5 and the straight-through estimator of Eq. 14).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLINGS = ("independent", "shared_threshold")
STRAIGHT_THROUGH = ("rate", "prob")


class PoissonGraphOutput(NamedTuple):
    """A batch-level graph over ``B`` samples.

    Attributes:
        edge_index: ``[2, B·(B-1)]``, every ordered pair ``j → i`` with ``i ≠ j`` (row 0 the
            source ``j``, row 1 the target ``i``), so that unsampled pairs stay in the graph and
            keep their gradient.
        edge_weight: ``[B·(B-1)]``, the weight ``A_ij`` of each pair: the sampled 0/1 values in
            training (with the straight-through gradient chosen by ``straight_through``),
            ``P_ij`` for the expected graph.
        prob: ``[B, B]`` edge probabilities ``P_ij = 1 - exp(-λ_ij)`` (zero diagonal).
        adjacency: ``[B, B]`` the sampled (or expected) adjacency without gradient.
    """

    edge_index: Tensor
    edge_weight: Tensor
    prob: Tensor
    adjacency: Tensor

    def sampled_edge_index(self) -> Tensor:
        """The pairs that were actually drawn, ``[2, num_sampled]`` (for drawing/inspection)."""
        return self.edge_index[:, self.edge_weight.detach() > 0]


class PoissonGraph(nn.Module):
    r"""Samples a graph over the samples of a mini-batch (AGFN §3.1).

    With cosine similarities :math:`c_{ij}` of the rows of :math:`\mathbf{X}` (Eq. 2), the
    Poisson rate and edge probability are

    .. math::
        \lambda_{ij} = \max(\alpha\, c_{ij} + \beta,\ 0), \qquad
        P_{ij} = P(e_{ij} = 1) = 1 - \mathrm{Po}(0; \lambda_{ij}) = 1 - e^{-\lambda_{ij}}

    (Eq. 3-4; the rate is clamped at zero because a Poisson rate cannot be negative), and in
    training :math:`A_{ij} \sim \mathrm{Bernoulli}(P_{ij})` independently for every ordered
    pair :math:`i \neq j` (Eq. 5). The draw is made differentiable with a straight-through
    estimator: the returned weight has the value of the 0/1 draw and the gradient of a
    surrogate :math:`s_{ij}` (``A + s − sg(s)``).

    - ``straight_through="rate"`` (default, the paper): Eq. 14 sets
      :math:`\partial A_{ij} / \partial \lambda_{ij} \approx 1` and Eq. 11 steps
      :math:`\alpha, \beta` with :math:`\frac{1}{N^2} \sum_{i,j} \nabla_\alpha
      \lambda_{ij} \nabla_{\lambda_{ij}} E` where :math:`\nabla_\alpha \lambda_{ij} =
      c_{ij}`, :math:`\nabla_\beta \lambda_{ij} = 1` (the linear rate of Eq. 4, no clamp).
      So :math:`\partial L / \partial \alpha = \frac{1}{N^2} \sum_{i \neq j} c_{ij}\,
      \partial L / \partial A_{ij}` and :math:`\partial L / \partial \beta =
      \frac{1}{N^2} \sum_{i \neq j} \partial L / \partial A_{ij}` over the :math:`N` nodes
      of the graph (self-pairs are never drawn, their term is zero).
    - ``straight_through="prob"``: :math:`\partial A_{ij} / \partial P_{ij} := 1`, so
      :math:`\partial A / \partial \lambda = e^{-\lambda}` (zero where the rate is
      clamped), summed over pairs — pyg-fer's estimator before issue 10; its effective
      :math:`\gamma_2` is of order :math:`N^2` times the paper's.

    Eq. 10 holds the sampled graph fixed when the network is updated, so by default
    (``edge_grad_to_features=False``) the surrogate sees the cosine similarities as constants:
    the edge weights pass gradient to :math:`\alpha, \beta` only, never into the features
    (and the backbone behind them). ``edge_grad_to_features=True`` lets it flow on through
    :math:`c_{ij}` into the features (the behaviour before issue 10). The features always get
    the gradient of the GCN's messages :math:`g(X, W, A)` with :math:`A` fixed.

    Every ordered pair is kept in ``edge_index`` (weight 0 when not drawn) so that the loss
    reaches the surrogate, and through it :math:`\alpha` and :math:`\beta`, for unsampled
    pairs too. Self-pairs are excluded: the GCN adds the identity (:math:`\mathbf{A} +
    \mathbf{I}`, Eq. 6).

    Args:
        alpha (float, optional): Initial :math:`\alpha`. (default: :obj:`1.4`, the authors'
            public code)
        beta (float, optional): Initial :math:`\beta`. (default: :obj:`0.0`)
        sampling (str, optional): ``"independent"``: one Bernoulli draw per pair (the paper);
            ``"shared_threshold"``: one uniform threshold :math:`u` per batch and
            :math:`A_{ij} = [P_{ij} > u]` (the authors' public code). (default:
            :obj:`"independent"`)
        symmetric (bool, optional): Draw once per unordered pair and mirror it, giving an
            undirected graph. (default: :obj:`False`)
        straight_through (str, optional): ``"rate"`` or ``"prob"``, see above. (default:
            :obj:`"rate"`)
        edge_grad_to_features (bool, optional): Let the sampled edge weights pass gradient into
            the features through the cosine similarities. (default: :obj:`False`)

    Shapes:
        - **input:** features :math:`(B, F)`
        - **output:** :class:`PoissonGraphOutput` over :math:`B` nodes
    """

    def __init__(
        self,
        alpha: float = 1.4,
        beta: float = 0.0,
        sampling: str = "independent",
        symmetric: bool = False,
        straight_through: str = "rate",
        edge_grad_to_features: bool = False,
    ) -> None:
        super().__init__()
        if sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling '{sampling}'; expected one of {SAMPLINGS}")
        if straight_through not in STRAIGHT_THROUGH:
            raise ValueError(f"unknown straight_through '{straight_through}'; expected one of "
                             f"{STRAIGHT_THROUGH}")
        self.straight_through = straight_through
        self.edge_grad_to_features = bool(edge_grad_to_features)
        self.alpha_init = float(alpha)
        self.beta_init = float(beta)
        self.sampling = sampling
        self.symmetric = symmetric
        self.alpha = nn.Parameter(torch.empty(()))
        self.beta = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.alpha.fill_(self.alpha_init)
            self.beta.fill_(self.beta_init)

    def probabilities(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """``P`` between the rows of ``x`` and of ``y`` (default ``x``), ``[len(x), len(y)]``.

        For ``y=None`` the diagonal (self-pairs) is zero.
        """
        if x.dim() != 2:
            raise ValueError(f"PoissonGraph expects features of shape [B, F], got {tuple(x.shape)}")
        if x.size(0) == 0:
            raise ValueError(f"PoissonGraph needs at least one sample, got features of shape "
                             f"{tuple(x.shape)}")
        return self._prob(self._cosine(x, y), diagonal=y is None)

    @staticmethod
    def _cosine(x: Tensor, y: Tensor | None = None) -> Tensor:
        xn = F.normalize(x, p=2.0, dim=-1)
        yn = xn if y is None else F.normalize(y, p=2.0, dim=-1)
        return xn @ yn.t()

    def _prob(self, cos: Tensor, diagonal: bool) -> Tensor:
        rate = torch.relu(self.alpha * cos + self.beta)
        prob = -torch.expm1(-rate)  # 1 - exp(-rate), accurate for small rates
        if diagonal:
            prob = prob * (1.0 - torch.eye(cos.size(0), device=cos.device, dtype=prob.dtype))
        return prob

    def forward(self, x: Tensor, sample: bool | None = None,
                adjacency: Tensor | None = None) -> PoissonGraphOutput:
        """Builds the graph; ``sample`` defaults to ``self.training`` (else the expected graph).

        ``adjacency``: a 0/1 ``[B, B]`` draw to use instead of drawing one here (for example
        one draw shared by every process, see :class:`~pyg_fer.nn.AGFN`'s ``global_graph``).
        """
        if x.dim() != 2:
            raise ValueError(f"PoissonGraph expects features of shape [B, F], got {tuple(x.shape)}")
        if x.size(0) == 0:
            raise ValueError(f"PoissonGraph needs at least one sample, got features of shape "
                             f"{tuple(x.shape)}")
        cos = self._cosine(x)
        prob = self._prob(cos, diagonal=True)
        sample = self.training if sample is None else sample
        if sample:
            if adjacency is None:
                hard = self._draw(prob.detach())
            else:
                if adjacency.shape != prob.shape:
                    raise ValueError(f"adjacency of shape {tuple(adjacency.shape)} given for "
                                     f"{x.size(0)} nodes")
                hard = adjacency.to(prob.dtype)
            surrogate = self._surrogate(cos, prob)
            weights = hard + (surrogate - surrogate.detach())  # value: hard; gradient: surrogate
        else:
            hard = prob.detach()
            weights = prob
        edge_index = all_pairs_edge_index(x.size(0), x.device)
        # Edge j -> i carries A_ij: row i of A is what node i aggregates.
        edge_weight = weights[edge_index[1], edge_index[0]]
        return PoissonGraphOutput(edge_index, edge_weight, prob, hard)

    def _surrogate(self, cos: Tensor, prob: Tensor) -> Tensor:
        """What the straight-through estimator differentiates in place of the 0/1 draw."""
        if not self.edge_grad_to_features:
            cos = cos.detach()  # Eq. 10: the sampled graph is fixed for the features
        if self.straight_through == "prob":
            return prob if self.edge_grad_to_features else self._prob(cos, diagonal=True)
        # "rate": dA/dλ = 1 on the linear rate of Eq. 4; Eq. 11 averages over the N² pairs.
        scale = 1.0 / cos.size(0) ** 2
        alpha = _scaled_grad(self.alpha, scale)
        beta = _scaled_grad(self.beta, scale)
        return alpha * cos + beta

    def _draw(self, prob: Tensor) -> Tensor:
        if self.sampling == "shared_threshold":
            hard = (prob > torch.rand((), device=prob.device, dtype=prob.dtype)).to(prob.dtype)
        else:
            hard = torch.bernoulli(prob)
        if self.symmetric:
            upper = torch.triu(hard, diagonal=1)
            hard = upper + upper.t()
        return hard.fill_diagonal_(0.0)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha.item():.4g}, beta={self.beta.item():.4g}, "
            f"sampling={self.sampling}" + (", symmetric=True" if self.symmetric else "")
            + (f", straight_through={self.straight_through}"
               if self.straight_through != "rate" else "")
            + (", edge_grad_to_features=True" if self.edge_grad_to_features else "")
        )


def _scaled_grad(t: Tensor, scale: float) -> Tensor:
    """``t`` in value, ``scale · ∂/∂t`` in gradient."""
    return t.detach() + (t - t.detach()) * scale


_PAIRS_CACHE: dict = {}


def all_pairs_edge_index(num_nodes: int, device: torch.device) -> Tensor:
    """``[2, n·(n-1)]`` every ordered pair ``j → i``, ``i ≠ j``, grouped by target ``i``.

    Built once per size and device; each call returns a copy, the caller's to change.
    """
    key = (num_nodes, str(device))
    cached = _PAIRS_CACHE.get(key)
    if cached is None:
        target = torch.arange(num_nodes, device=device).repeat_interleave(num_nodes)
        source = torch.arange(num_nodes, device=device).repeat(num_nodes)
        keep = source != target
        cached = torch.stack([source[keep], target[keep]])
        if len(_PAIRS_CACHE) > 16:
            _PAIRS_CACHE.clear()
        _PAIRS_CACHE[key] = cached
    return cached.clone()
