"""What the speed scripts (``throughput.py``, ``profile_model.py``) share: the device and
autocast settings, ``torch.compile`` modes, and the inference and training step they time.

The training step is the engine's own (:func:`pyg_fer.engine.steps.standard_step`: zero the
gradients, forward under autocast, label-smoothing cross-entropy, scaled backward, optimiser
step, scaler update), so a benchmark times what ``pyg-fer train`` runs."""

from __future__ import annotations

import argparse
import contextlib
import functools

import torch
from torch import nn

from pyg_fer.engine.config import CUDAGRAPH_MODES
from pyg_fer.engine.steps import standard_step
from pyg_fer.engine.trainer import resolve_device as _engine_device
from pyg_fer.nn.loss import label_smoothing_cross_entropy

__all__ = ["AMP_DTYPES", "CUDAGRAPH_MODES", "autocast", "compile_model", "grad_scaler",
           "infer_step", "resolve_device", "train_step"]

#: ``--amp`` choices and the autocast dtype of each (``none``: no autocast).
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, parser: argparse.ArgumentParser) -> torch.device:
    """``--device``: ``'auto'`` (CUDA when available, else the CPU) or a device that exists
    here, as the engine resolves it; anything else is a usage error, not a traceback."""
    try:
        return _engine_device(name)
    except ValueError as err:
        parser.error(str(err))


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast to ``AMP_DTYPES[amp]`` on ``device``, or nothing for ``'none'``."""
    dtype = AMP_DTYPES[amp]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """The gradient scaler a step under ``amp`` needs: enabled for float16 only."""
    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")


def compile_model(model: nn.Module, mode: str) -> nn.Module:
    """``torch.compile(model, mode=...)``; ``'default'`` is PyTorch's default mode."""
    return torch.compile(model, mode=None if mode == "default" else mode)


def infer_step(model: nn.Module, x: torch.Tensor, device: torch.device, amp: str,
               cudagraphs: bool = False) -> None:
    """One evaluation-mode forward under ``inference_mode`` and autocast."""
    model.eval()
    if cudagraphs:
        torch.compiler.cudagraph_mark_step_begin()
    with torch.inference_mode(), autocast(device, amp):
        model(x)


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, device: torch.device, amp: str,
               cudagraphs: bool = False) -> None:
    """One training step of the engine (label smoothing 0.1, no clipping)."""
    model.train()
    if cudagraphs:
        torch.compiler.cudagraph_mark_step_begin()
    standard_step(model, x, y, opt, functools.partial(label_smoothing_cross_entropy,
                                                      smoothing=0.1),
                  scaler, functools.partial(autocast, device, amp))
