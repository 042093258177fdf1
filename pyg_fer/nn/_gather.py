"""Differentiable all-gather of per-process rows and a shared random draw, on
``torch.distributed`` only (no engine imports: layers sit below the engine)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Processes in the default group (1 when ``torch.distributed`` is not initialised)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class _AllGatherRows(torch.autograd.Function):
    """Rows of every process concatenated in rank order; backward sums the gradient every
    process computed for a row and hands it to the row's owner."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: list, rank: int) -> Tensor:  # type: ignore[override]
        ctx.sizes, ctx.rank = sizes, rank
        padded = x.new_zeros((max(sizes),) + tuple(x.shape[1:]))
        padded[: x.size(0)] = x
        bufs = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(bufs, padded)
        return torch.cat([b[:n] for b, n in zip(bufs, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def all_gather_rows(x: Tensor) -> tuple[Tensor, int]:
    """``(rows of every process in rank order, offset of this process's rows)``.

    Differentiable: the gradient reaching this process's rows is the sum of what every process's
    backward sends them, so with DistributedDataParallel's gradient averaging each process's
    parameters get the gradient of the mean of all processes' losses. Processes may hold
    different numbers of rows (padded for the collective).
    """
    rank = dist.get_rank()
    n = torch.tensor([x.size(0)], device=x.device, dtype=torch.long)
    counts = [torch.empty_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, n)
    sizes = [int(c) for c in counts]
    return _AllGatherRows.apply(x, sizes, rank), sum(sizes[:rank])


def broadcast_draw(draw: Tensor | None, shape: tuple, device: torch.device,
                   dtype: torch.dtype) -> Tensor:
    """Rank 0's 0/1 ``draw`` of ``shape`` on every process (sent as uint8)."""
    if dist.get_rank() == 0:
        if draw is None or tuple(draw.shape) != tuple(shape):
            raise ValueError(f"rank 0 must pass a draw of shape {tuple(shape)}")
        buf = draw.to(torch.uint8).contiguous()
    else:
        buf = torch.empty(shape, dtype=torch.uint8, device=device)
    dist.broadcast(buf, src=0)
    return buf.to(dtype)
