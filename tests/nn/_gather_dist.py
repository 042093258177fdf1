"""Body of the 3-process gloo test of ``all_gather_rows`` (importable by the spawned processes)."""

from __future__ import annotations

from pathlib import Path

import torch

from pyg_fer.engine import distributed as D
from pyg_fer.nn._gather import all_gather_rows

#: Rows held by ranks 0, 1, 2: unequal, so that an offset of ``sizes[0] * rank`` is wrong.
SIZES = (1, 3, 2)


def rows_of(rank: int) -> torch.Tensor:
    """Rank ``rank``'s rows ``[SIZES[rank], 2]``: ``100 * rank + 0, 1, 2, ...``."""
    return (100.0 * rank + torch.arange(2.0 * SIZES[rank])).reshape(-1, 2)


def weights(rank: int) -> torch.Tensor:
    """The weight rank ``rank`` gives every gathered row in its loss ``sum(weights * rows)``."""
    return (rank + 1) * torch.arange(2.0 * sum(SIZES)).reshape(-1, 2)


def gather_worker(out_dir: str) -> None:
    torch.set_num_threads(1)
    info = D.init_distributed("gloo", "cpu")
    rank = info.rank
    x = rows_of(rank).requires_grad_()
    rows, offset = all_gather_rows(x)
    (weights(rank) * rows).sum().backward()
    torch.save({"rows": rows.detach(), "offset": offset, "grad": x.grad},
               Path(out_dir) / f"rank{rank}.pt")
    D.cleanup(info)
