"""Bodies of the 2-process gloo AGFN tests (importable by the spawned processes)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from _engine_tiny import BlobImages, TinyAGFNLayer, tiny_config
from torch.nn.parallel import DistributedDataParallel

from pyg_fer.engine import distributed as D

GLOBAL_BATCH = 8
STEPS = 3


def batches(n: int = STEPS + 1, seed: int = 1) -> list:
    """``n`` global batches ``(images [8, 3, 8, 8], targets [8])``, the same in every process."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(GLOBAL_BATCH, 3, 8, 8, generator=g),
             torch.randint(4, (GLOBAL_BATCH,), generator=g)) for _ in range(n)]


def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, targets)


def forward_backward(model, images, targets, seed):
    """One forward (S draws, losses averaged) and backward; the draws are recorded."""
    bare = model.module if hasattr(model, "module") else model
    drawn = []
    hook = bare.agfn.graph.register_forward_hook(
        lambda m, i, o: drawn.append(o.adjacency.clone()))
    torch.manual_seed(seed)
    out = model(images, return_samples=True)
    loss = torch.stack([loss_fn(o, targets) for o in out]).mean()
    loss.backward()
    hook.remove()
    return {"out": out.detach(), "draws": torch.stack(drawn),
            "grads": {n: p.grad.detach().clone() for n, p in bare.named_parameters()},
            "bank": bare.agfn.bank.clone(), "bank_count": int(bare.agfn.bank_count)}


def coordinate_descent(model, data, rank_rows, seed, dist_info=None, graph_step="fresh"):
    """``STEPS`` coordinate-descent steps on ``data[1:]``."""
    from pyg_fer.engine import coordinate_descent_step

    bare = model.module if hasattr(model, "module") else model
    opt_net = torch.optim.SGD(bare.network_parameters(), lr=0.5)
    opt_graph = torch.optim.SGD(bare.graph_parameters(), lr=50.0)
    torch.manual_seed(seed)
    for images, targets in data[1:]:
        coordinate_descent_step(model, images[rank_rows], targets[rank_rows], opt_net, opt_graph,
                                loss_fn, dist_info=dist_info, graph_step=graph_step)
    state = {n: p.detach().clone() for n, p in bare.named_parameters()}
    state.update(bank=bare.agfn.bank.clone(), bank_count=bare.agfn.bank_count.clone())
    return state


def global_graph_worker(out_dir: str) -> None:
    """Each rank takes 4 of the 8 samples: forward+backward with the global graph on and off,
    then coordinate-descent steps with it on; the results go to ``rank{r}.pt``."""
    torch.set_num_threads(1)
    info = D.init_distributed("gloo", "cpu")
    rank = info.rank
    rows = slice(4 * rank, 4 * rank + 4)
    data = batches()
    images, targets = data[0]
    results = {}
    for global_graph in (True, False):
        torch.manual_seed(0)
        model = DistributedDataParallel(TinyAGFNLayer(global_graph=global_graph).train())
        results[global_graph] = forward_backward(model, images[rows], targets[rows],
                                                  seed=100 + rank)
    torch.manual_seed(0)
    model = DistributedDataParallel(TinyAGFNLayer(global_graph=True).train())
    # no dist_info: coordinate_descent_step reads the live process group (the public API's
    # default must not let α, β drift apart across ranks)
    results["steps"] = coordinate_descent(model, data, rows, seed=200 + rank)
    torch.manual_seed(0)
    model = DistributedDataParallel(TinyAGFNLayer(global_graph=True).train())
    results["steps_shared"] = coordinate_descent(model, data, rows, seed=300 + rank,
                                                 dist_info=info, graph_step="shared")
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    D.cleanup(info)


def train_worker(out_dir: str) -> None:
    """``train()`` of the AGFN-layer model on 2 processes with ``agfn.global_graph`` on, then
    off; every rank saves α, β and the bank after each epoch."""
    torch.set_num_threads(1)
    info = D.init_distributed("gloo", "cpu")  # one group for both runs
    rank = int(os.environ["RANK"])
    from pyg_fer.engine import train

    for global_graph in (True, False):
        out = Path(out_dir) / f"global_{global_graph}"
        records = []

        def on_epoch_end(epoch, model, record, out=out, records=records):
            bare = model.module if hasattr(model, "module") else model
            records.append({"alpha": bare.agfn.graph.alpha.detach().clone(),
                            "beta": bare.agfn.graph.beta.detach().clone(),
                            "bank": bare.agfn.bank.clone(),
                            "global_graph": bare.agfn.global_graph})

        cfg = tiny_config(out, model={"name": "_tiny_test_agfn_layer", "kwargs": {}},
                          train={"epochs": 2, "batch_size": 8},
                          distributed={"backend": "gloo"},
                          agfn={"enabled": True, "graph_lr": 5.0, "loss": "ce",
                                "global_graph": global_graph})
        train(cfg, train_dataset=BlobImages(32, seed=1), eval_dataset=BlobImages(8, seed=2),
              on_epoch_end=on_epoch_end)
        torch.save(records, Path(out_dir) / f"train_global_{global_graph}_rank{rank}.pt")
    D.cleanup(info)
