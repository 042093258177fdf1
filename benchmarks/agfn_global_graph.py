"""What AGFN's global-batch graph (``global_graph=True``, issue 18) adds per step under DDP.

Two processes on gloo (CPU), ``--batch`` samples per process. In each round every arm runs
once on both processes (each call starts with a barrier, so both sides of a ratio pay it):

- ``layer, own batch`` — the AGFN layer (512 → 512) forward + backward on this process's
  ``B × F`` features, graph over the process's own batch (the baseline);
- ``layer, 2B rows locally`` — the same layer on ``2B`` rows in one process: the compute of a
  graph of the global size, with no communication;
- ``layer, global graph`` — the layer with ``global_graph=True``: all-gather of the features,
  one draw on rank 0 broadcast, GCN over all ``2B`` nodes, gradient summed back to the owners;
- ``step, own batch`` / ``step, global graph`` — one engine coordinate-descent step
  (``pyg_fer.engine.coordinate_descent_step``, fresh graph step) of DDP-wrapped
  ``agfn_resnet18`` at ``--img-size``, the AGFN graph per process (baseline) or global.

Printed: medians over rounds (rank 0's clock), and per arm the median over rounds of the
per-round ratio to its baseline and the median per-round difference in ms.

Usage: ``python benchmarks/agfn_global_graph.py [--batch 32] [--img-size 64] [--rounds 9]
[--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import format_table, interleaved_seconds, machine_line  # noqa: E402

import pyg_fer  # noqa: E402
from pyg_fer.engine import coordinate_descent_step  # noqa: E402
from pyg_fer.engine import distributed as D  # noqa: E402
from pyg_fer.nn import AGFN  # noqa: E402


def _layer_arm(layer: AGFN, feats: torch.Tensor):
    def run():
        dist.barrier()
        x = feats.detach().requires_grad_(True)
        layer(x).square().mean().backward()
    return run


def _step_arm(model, images, targets, global_graph: bool):
    bare = model.module
    opt_net = torch.optim.SGD(bare.network_parameters(), lr=1e-3)
    opt_graph = torch.optim.SGD(bare.graph_parameters(), lr=1e-3)
    info = D.DistInfo(dist.get_rank(), dist.get_world_size())

    def run():
        dist.barrier()
        bare.set_global_graph(global_graph)
        coordinate_descent_step(model, images, targets, opt_net, opt_graph, F.cross_entropy,
                                dist_info=info)
    return run


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    info = D.init_distributed("gloo", "cpu")
    torch.manual_seed(0)
    b, f = args.batch, 512
    local = AGFN(f, f).train()
    glob = AGFN(f, f, global_graph=True).train()
    glob.load_state_dict(local.state_dict())
    feats = torch.randn(b, f)
    layer_arms = {
        "layer, own batch": _layer_arm(local, feats),
        "layer, 2B rows locally": _layer_arm(local, torch.cat([feats, feats.flip(0)])),
        "layer, global graph": _layer_arm(glob, feats),
    }
    model = torch.nn.parallel.DistributedDataParallel(
        pyg_fer.create_model("agfn_resnet18", num_classes=7).train(),
        find_unused_parameters=True)
    images = torch.randn(b, 3, args.img_size, args.img_size)
    targets = torch.randint(7, (b,))
    step_arms = {
        "step, own batch": _step_arm(model, images, targets, False),
        "step, global graph": _step_arm(model, images, targets, True),
    }
    times = interleaved_seconds(layer_arms, args.rounds, warmup=2)
    times.update(interleaved_seconds(step_arms, args.rounds, warmup=1))
    if info.is_main:
        baselines = {"layer": "layer, own batch", "step": "step, own batch"}
        rows = []
        for name, ts in times.items():
            base = times[baselines[name.split(",")[0]]]
            pairs = list(zip(ts, base, strict=True))
            rows.append([name, f"{1e3 * statistics.median(ts):.2f}",
                         f"{statistics.median(t / u for t, u in pairs):.3f}",
                         f"{1e3 * statistics.median(t - u for t, u in pairs):+.2f}"])
        print(f"{machine_line()}; gloo, 2 processes, {b} samples per process (global batch "
              f"{2 * b}), F = {f}, agfn_resnet18 at {args.img_size} px, {args.rounds} rounds")
        print(format_table(["arm", "median ms", "ratio to baseline", "added ms"], rows))
    D.cleanup(info)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=32, help="samples per process")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = p.parse_args()
    D.launch(worker, nproc=2, args=(args,))


if __name__ == "__main__":
    main()
