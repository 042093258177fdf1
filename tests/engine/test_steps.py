"""pyg_fer.engine.steps: one optimiser step, with gradient scaling and clipping."""

import contextlib

import torch

from pyg_fer.engine.steps import forward_backward_step


def _step(scaler: torch.amp.GradScaler, grad_clip: float | None) -> torch.Tensor:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    before = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    x, y = torch.randn(8, 4), torch.tensor([0, 1] * 4)
    forward_backward_step(model, x, y, opt, torch.nn.functional.cross_entropy, scaler,
                          contextlib.nullcontext, grad_clip, list(model.parameters()))
    return model.weight.detach() - before


def test_clipping_sees_unscaled_gradients():
    plain = _step(torch.amp.GradScaler("cpu", enabled=False), None)
    # a clip far above the gradient's norm changes nothing, even at a loss scale of 1024:
    # the gradients are unscaled before they are clipped
    scaled = _step(torch.amp.GradScaler("cpu", init_scale=1024.0), grad_clip=10.0)
    torch.testing.assert_close(scaled, plain)
    # a clip below it caps the step's norm (SGD, lr 1: the step is the clipped gradient)
    clipped = _step(torch.amp.GradScaler("cpu", init_scale=1024.0), grad_clip=0.05)
    assert plain.norm() > 0.05
    assert clipped.norm() <= 0.05 + 1e-6
