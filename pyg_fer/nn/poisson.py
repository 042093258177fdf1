r"""The Poisson graph generator of AGFN (Du et al., "Adaptive Graph-Based Feature Normalization
for Facial Expression Recognition", §3.1, Eq. 2-5 and the straight-through estimator of Eq. 14).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLINGS = ("independent", "shared_threshold")


class PoissonGraphOutput(NamedTuple):
    """A batch-level graph over ``B`` samples.

    Attributes:
        edge_index: ``[2, B·(B-1)]``, every ordered pair ``j → i`` with ``i ≠ j`` (row 0 the
            source ``j``, row 1 the target ``i``), so that unsampled pairs stay in the graph and
            keep their gradient.
        edge_weight: ``[B·(B-1)]``, the weight ``A_ij`` of each pair: the sampled 0/1 values in
            training (with the straight-through gradient of ``P_ij``), ``P_ij`` for the
            expected graph.
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
    pair :math:`i \neq j` (Eq. 5). The draw is made differentiable with the straight-through
    estimator of Eq. 14, :math:`\partial A_{ij} / \partial P_{ij} := 1`: the returned weight is
    :math:`A_{ij} + P_{ij} - \mathrm{sg}(P_{ij})`. Every ordered pair is kept in ``edge_index``
    (weight 0 when not drawn) so that the loss reaches :math:`P_{ij}`, and through it
    :math:`\alpha` and :math:`\beta`, for unsampled pairs too. Self-pairs are excluded: the GCN
    adds the identity (:math:`\mathbf{A} + \mathbf{I}`, Eq. 6).

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
    ) -> None:
        super().__init__()
        if sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling '{sampling}'; expected one of {SAMPLINGS}")
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

    def probabilities(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """``P`` between the rows of ``x`` and of ``y`` (default ``x``), ``[len(x), len(y)]``.

        For ``y=None`` the diagonal (self-pairs) is zero.
        """
        if x.dim() != 2:
            raise ValueError(f"PoissonGraph expects features of shape [B, F], got {tuple(x.shape)}")
        xn = F.normalize(x, p=2.0, dim=-1)
        yn = xn if y is None else F.normalize(y, p=2.0, dim=-1)
        rate = torch.relu(self.alpha * (xn @ yn.t()) + self.beta)
        prob = -torch.expm1(-rate)  # 1 - exp(-rate), accurate for small rates
        if y is None:
            prob = prob * (1.0 - torch.eye(x.size(0), device=x.device, dtype=prob.dtype))
        return prob

    def forward(self, x: Tensor, sample: Optional[bool] = None) -> PoissonGraphOutput:
        """Builds the graph; ``sample`` defaults to ``self.training`` (else the expected graph)."""
        prob = self.probabilities(x)
        sample = self.training if sample is None else sample
        if sample:
            hard = self._draw(prob.detach())
            weights = hard + prob - prob.detach()  # value: hard; gradient: identity to P
        else:
            hard = prob.detach()
            weights = prob
        edge_index = all_pairs_edge_index(x.size(0), x.device)
        # Edge j -> i carries A_ij: row i of A is what node i aggregates.
        edge_weight = weights[edge_index[1], edge_index[0]]
        return PoissonGraphOutput(edge_index, edge_weight, prob, hard)

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
        )


_PAIRS_CACHE: dict = {}


def all_pairs_edge_index(num_nodes: int, device: torch.device) -> Tensor:
    """``[2, n·(n-1)]`` every ordered pair ``j → i``, ``i ≠ j``, grouped by target ``i``."""
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
    return cached
