"""AGFN's training mode (AGFN §3.3): models with graph parameters and the coordinate-descent
step that alternates a network step and a graph step.

Everything AGFN-specific in the engine lives here: which models qualify
(:class:`GraphParamModel`), how their parameters split, when the graph is switched on
(``agfn.pretrain_epochs``), and :func:`coordinate_descent_step`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from pyg_fer.engine import distributed as D
from pyg_fer.engine.checkpoint import unwrap
from pyg_fer.engine.config import AGFNConfig
from pyg_fer.engine.steps import (
    LossFn,
    check_sample_average,
    forward_backward_step,
    sampled_forward,
)


@runtime_checkable
class GraphParamModel(Protocol):
    """A model whose parameters split into the graph's (AGFN's α, β) and the network's."""

    def graph_parameters(self) -> Iterator[nn.Parameter]: ...

    def network_parameters(self) -> Iterator[nn.Parameter]: ...


@runtime_checkable
class SwitchableGraphModel(GraphParamModel, Protocol):
    """A :class:`GraphParamModel` that can run without its batch graph (the baseline trained
    for ``agfn.pretrain_epochs`` before AGFN is inserted, AGFN §4.1)."""

    def set_agfn_enabled(self, enabled: bool) -> None: ...


def check_agfn_model(model: nn.Module, cfg: AGFNConfig, name: str) -> None:
    """Raise :class:`ValueError` when ``cfg`` asks for AGFN training that ``model`` cannot do."""
    if not cfg.enabled:
        return
    if not isinstance(model, GraphParamModel):
        raise ValueError(f"agfn.enabled is true but model '{name}' has no "
                         "graph_parameters()/network_parameters()")
    if cfg.pretrain_epochs > 0 and not isinstance(model, SwitchableGraphModel):
        raise ValueError(f"agfn.pretrain_epochs > 0 needs model '{name}' to offer "
                         "set_agfn_enabled(bool)")


def split_parameters(model: GraphParamModel) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """The trainable ``(network, graph)`` parameters; every trainable parameter in exactly one.

    Raises:
        ValueError: the two sets overlap, or a trainable parameter is in neither (named).
    """
    net = [p for p in model.network_parameters() if p.requires_grad]
    graph = [p for p in model.graph_parameters() if p.requires_grad]
    net_ids, graph_ids = {id(p) for p in net}, {id(p) for p in graph}
    if net_ids & graph_ids:
        raise ValueError("graph_parameters() and network_parameters() overlap")
    missing = [name for name, p in model.named_parameters()
               if p.requires_grad and id(p) not in net_ids | graph_ids]
    if missing:
        raise ValueError(f"parameters in neither graph_parameters() nor network_parameters(): "
                         f"{missing[:5]}")
    return net, graph


def set_agfn_phase(model: nn.Module, cfg: AGFNConfig, epoch: int) -> bool:
    """Switch the batch graph on after ``cfg.pretrain_epochs`` epochs; ``True`` when this epoch
    trains with coordinate descent."""
    agfn_on = cfg.enabled and epoch > cfg.pretrain_epochs
    if cfg.enabled and isinstance(model, SwitchableGraphModel):
        model.set_agfn_enabled(agfn_on)
    return agfn_on


@contextlib.contextmanager
def _frozen(params: Sequence[nn.Parameter]):
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


@contextlib.contextmanager
def _preserved_buffers(model: nn.Module):
    """Restore every buffer (BatchNorm running statistics) on exit."""
    saved = [(buf, buf.detach().clone()) for buf in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def coordinate_descent_step(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    opt_net: torch.optim.Optimizer,
    opt_graph: torch.optim.Optimizer,
    loss_fn: LossFn,
    *,
    graph_step: str = "fresh",
    scaler: torch.amp.GradScaler | None = None,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    grad_clip: float | None = None,
    dist_info: D.DistInfo | None = None,
    sample_average: str = "loss",
) -> tuple[Tensor, Tensor]:
    """One AGFN coordinate-descent iteration (AGFN §3.3).

    1. Network step, Eq. 9–10: ``W ← W − γ1 ∇_W E`` from a forward/backward pass with the
       sampler's α, β held fixed (only ``opt_net`` steps).
    2. Graph step, Eq. 11: ``(α, β) ← (α, β) − γ2 ∇_{α,β} E`` with ``W`` held fixed. With
       ``graph_step='fresh'`` (default) the gradient comes from a new forward pass at the updated
       ``Ŵ`` with a newly sampled graph — Gauss–Seidel coordinate descent; the network
       parameters are frozen for it and the BatchNorm statistics it would update are restored.
       With ``'shared'`` it reuses the gradient of step 1 (one backward pass, half the cost).

    ``dist_info``: the process group whose ranks average the graph step's α, β gradients
    (default: the live one, if any), as DDP averages the network's.

    ``sample_average``: when the model draws ``S > 1`` graphs per forward, ``'loss'`` averages
    the ``S`` losses (Eq. 10: the gradient is the mean of the per-draw gradients) and
    ``'output'`` takes the loss of the averaged outputs.

    Returns:
        ``(logits, loss)`` of the network step's forward pass (detached; with ``S > 1`` draws
        the logits are averaged over the draws).
    """
    check_sample_average(sample_average)
    forward = functools.partial(sampled_forward, sample_average=sample_average)
    bare = unwrap(model)
    scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)
    net_params = [p for p in bare.network_parameters() if p.requires_grad]
    graph_params = [p for p in bare.graph_parameters() if p.requires_grad]
    opt_graph.zero_grad(set_to_none=True)
    logits, loss = forward_backward_step(model, images, targets, opt_net, loss_fn, scaler,
                                         autocast, grad_clip, net_params, forward)
    if graph_step == "shared":
        scaler.step(opt_graph)
        scaler.update()
        return logits.detach(), loss.detach()
    if graph_step != "fresh":
        raise ValueError(f"unknown graph_step '{graph_step}'; valid: fresh, shared")
    scaler.update()
    opt_graph.zero_grad(set_to_none=True)
    with _frozen(net_params), _preserved_buffers(bare):
        with autocast():
            graph_loss = forward(bare, images, targets, loss_fn)[1]
        scaler.scale(graph_loss).backward()
    info = dist_info or D.current()  # a DDP model's ranks must agree on α, β
    if info.enabled:
        for p in graph_params:
            if p.grad is not None:
                D.all_reduce_sum(p.grad, info).div_(info.world_size)
    scaler.step(opt_graph)
    scaler.update()
    return logits.detach(), loss.detach()
