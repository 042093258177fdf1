"""Distributed data-parallel helpers on PyTorch's own engine (``torch.distributed``).

Two ways to start ``N`` processes:

* ``torchrun --nproc-per-node N -m pyg_fer train RECIPE ...`` — torchrun sets ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and
  :func:`init_distributed` joins the process group from them;
* ``pyg-fer train RECIPE --nproc N`` — :func:`launch` spawns the processes itself with
  ``torch.multiprocessing`` on a free local port, then does the same.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import Sampler

from pyg_fer._signals import sigterm_as_exit


@dataclass
class DistInfo:
    """Rank and world of this process, and whether this module created the process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: str = "auto", device_type: str = "cpu") -> DistInfo:
    """Join the process group described by the environment (no-op for a single process).

    Args:
        backend: ``'auto'`` picks NCCL for CUDA devices and gloo otherwise.
        device_type: ``'cpu'`` or ``'cuda'``.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if backend == "auto":
        backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method="env://", rank=rank,
                            world_size=world_size)
    return DistInfo(rank, world_size, local_rank, True)


def cleanup(info: DistInfo, wait: bool = True) -> None:
    """Leave the process group if :func:`init_distributed` created it, after the other ranks
    reach this point when ``wait``. A rank that failed passes ``wait=False``: its peers are
    inside a collective it will never join, so a barrier would hang them all; it leaves at once
    and the launcher (``--nproc`` or torchrun) stops the others."""
    if info.owns_group and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over all ranks (in place; returned for convenience)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def current() -> DistInfo:
    """This process's rank and world from the live process group (one process if none)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", "0")), False)
    return DistInfo()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Rank 0's buffers (BatchNorm statistics, AGFN's bank...) on every rank, in place.

    DDP copies them only at the start of a forward pass, so after an epoch's last step each
    rank holds its own; evaluation must use the checkpoint's (rank 0's)."""
    if info.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class ShardSampler(Sampler[int]):
    """Evaluation sampler: rank ``r`` of ``W`` takes indices ``r, r+W, r+2W, ...``.

    Unlike :class:`~torch.utils.data.DistributedSampler` it pads nothing, so sums of per-rank
    confusion matrices count every test sample exactly once.
    """

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, num_samples, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def free_port() -> int:
    """An unused TCP port on localhost."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(local_rank: int, nproc: int, port: int, fn: Callable[..., Any],
            args: Sequence[Any]) -> None:
    os.environ.update(
        RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    with sigterm_as_exit():  # stopped by launch (or torch, when a peer fails): clean up first
        try:
            fn(*args)
        except Exception:
            # launch re-raises one failed process's error, not always the first to fail (its
            # peers' collectives fail once it is gone): each process prints its own
            print(f"[pyg-fer] process of rank {local_rank} of {nproc} failed:\n"
                  f"{traceback.format_exc()}", file=sys.stderr, flush=True)
            raise


#: Seconds :func:`launch` gives its processes to clean up after SIGTERM before SIGKILL.
STOP_GRACE_S = 30.0


def _stop(processes: Sequence[Any], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the live ``processes`` (each ends through ``SystemExit``, its ``finally`` blocks
    run), then SIGKILL any still alive ``grace`` seconds later, or at once if this process is
    interrupted meanwhile."""
    alive = [p for p in processes if p.is_alive()]
    try:
        for p in alive:
            p.terminate()
        deadline = time.monotonic() + grace
        for p in alive:
            p.join(max(0.0, deadline - time.monotonic()))
    finally:  # also when a second Ctrl-C cuts the grace short
        for p in alive:
            if p.is_alive():
                p.kill()
                p.join()


def launch(fn: Callable[..., Any], nproc: int, args: Sequence[Any] = ()) -> None:
    """Run ``fn(*args)`` in ``nproc`` local processes that form one process group.

    ``fn`` must be importable (a module-level function); each process sees torchrun's
    environment variables, so ``fn`` calls :func:`init_distributed` as under torchrun. An
    exception in any process stops the others and is re-raised here. When this process is
    interrupted (Ctrl-C, or SIGTERM under :func:`~pyg_fer._signals.sigterm_as_exit` as the
    command line runs), it stops its processes before the exception goes on: SIGTERM, which
    each turns into ``SystemExit`` so that it releases its run folder, then SIGKILL after
    :data:`STOP_GRACE_S` seconds.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    port = free_port()
    context = mp.start_processes(_worker, args=(nproc, port, fn, tuple(args)), nprocs=nproc,
                                 join=False, start_method="spawn")
    try:
        while not context.join():
            pass
    except BaseException:
        _stop(context.processes)
        raise
    finally:  # torch leaves a failed process's traceback file in the temporary folder
        for path in context.error_files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
