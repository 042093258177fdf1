"""The differentiable all-gather under AGFN's global graph: 3 gloo processes, unequal rows."""

import sys
from pathlib import Path

import torch

from pyg_fer.engine.distributed import launch

# --import-mode=importlib puts no test folder on sys.path; the spawned processes import the
# worker from this plain module
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gather_dist import SIZES, gather_worker, rows_of, weights  # noqa: E402


def test_all_gather_rows_offsets_order_and_gradients_with_unequal_row_counts(tmp_path):
    launch(gather_worker, nproc=3, args=(str(tmp_path),))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(3)]
    everyone = torch.cat([rows_of(r) for r in range(3)])  # rank order
    assert everyone.shape == (6, 2)
    offsets = [0, 1, 4]
    assert [r["offset"] for r in ranks] == offsets
    total = sum(weights(r) for r in range(3))  # each row's gradient, summed over the processes
    for rank, got in enumerate(ranks):
        assert torch.equal(got["rows"], everyone), rank
        start = offsets[rank]
        assert torch.equal(got["grad"], total[start:start + SIZES[rank]]), rank
