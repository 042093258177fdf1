"""Graph-operator benchmark: dilated k-NN backends and graph convolutions.

Prints two tables of median times with ratios to a named baseline measured in the same run:

1. dilated k-NN graph at B=64 graphs, N in {49, 196, 784}, D=512, k=9, d in {1, 2}, per
   backend; baseline: ``torch_cluster`` (the design's backend) when installed, else ``dense``.
2. forward+backward at the Face2Nodes size (B=64, N=49, D=512, k=9) of RGConv (scalar and
   channel gate), MRConv and PyG's EdgeConv (max, MLP 2D->D); baseline: EdgeConv. Each of
   RGConv/MRConv is also timed on the same edges shuffled, which sends it through PyG's
   generic ``propagate`` (gather + scatter) instead of the fused k-NN path, and RGConv with h
   applied per edge (Eq. 7 read literally) instead of per node.
3. with ``--dense-ops``: where the dense k-NN backend's time goes, per size and dilation —
   ``torch.profiler``'s operators by self time per call and their share of the call (the
   centring's ``mean`` and ``sub``, the norms, the ``baddbmm`` scores, the ``topk``), from
   ``profile_model.py``'s tables.

Usage: ``python benchmarks/graph_ops.py [--repeats 5] [--sizes 49 196 784] [--device cpu]
[--dense-ops]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile
from torch_geometric.nn import EdgeConv, MessagePassing

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _steps import resolve_device  # noqa: E402
from profile_model import render, summarise  # noqa: E402
from _timing import format_table, machine_line, median_seconds  # noqa: E402

from pyg_fer.nn import MRConv, RGConv, dilated_knn_graph  # noqa: E402
from pyg_fer.nn.knn import WITH_TORCH_CLUSTER  # noqa: E402


class PerEdgeGateRGConv(MessagePassing):
    """RG-Conv with h applied to every edge's relation (Eq. 7 read literally)."""

    def __init__(self, in_channels: int, out_channels: int, gate: str = "scalar") -> None:
        super().__init__(aggr="sum")
        self.gate_lin = nn.Linear(in_channels, 1 if gate == "scalar" else in_channels)
        self.update_lin = nn.Linear(2 * in_channels, out_channels)
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.GELU()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        aggr = self.propagate(edge_index, x=x)
        return self.act(self.norm(self.update_lin(torch.cat([x, aggr], dim=-1))))

    def message(self, x_i: Tensor, x_j: Tensor) -> Tensor:
        relation = x_j - x_i
        return torch.sigmoid(self.gate_lin(relation)) * relation


def knn_table(args) -> str:
    backends = (["torch_cluster"] if WITH_TORCH_CLUSTER else []) + ["dense"]
    baseline = backends[0]
    rows = []
    for n in args.sizes:
        x = torch.randn(args.batch, n, args.dim, device=args.device)
        for d in (1, 2):
            times = {}
            for backend in backends:
                times[backend] = median_seconds(
                    lambda x=x, d=d, backend=backend: dilated_knn_graph(
                        x, args.k, d, backend=backend),
                    repeats=args.repeats, max_seconds=args.max_seconds,
                )
            for backend in backends:
                rows.append([
                    n, d, backend, f"{times[backend] * 1e3:.1f}",
                    f"{times[backend] / times[baseline]:.3f}",
                    f"{times[baseline] / times[backend]:.1f}x",
                ])
    note = "" if WITH_TORCH_CLUSTER else "\n(torch-cluster not installed: dense only)\n"
    header = ["N", "d", "backend", "median ms", f"time / {baseline}", "speed-up"]
    return (
        f"Dilated k-NN, B={args.batch}, D={args.dim}, k={args.k}; baseline: {baseline}{note}\n"
        + format_table(header, rows)
    )


def dense_ops_tables(args) -> str:
    """The dense backend's operators by self time, per call, for every size and dilation."""
    on_cuda = args.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    out = []
    for n in args.sizes:
        x = torch.randn(args.batch, n, args.dim, device=args.device)
        for d in (1, 2):
            def call(x=x, d=d):
                return dilated_knn_graph(x, args.k, d, backend="dense")

            call()  # warm-up: allocator, kernels
            if on_cuda:
                torch.cuda.synchronize(args.device)
            with profile(activities=activities) as prof:
                for _ in range(args.repeats):
                    call()
                if on_cuda:
                    torch.cuda.synchronize(args.device)
            summary = summarise(prof.events(), [], args.repeats, on_cuda, top=8)
            out.append(render(summary, f"Dense k-NN operators per call, B={args.batch}, N={n}, "
                                       f"D={args.dim}, k={args.k}, d={d} ({args.repeats} calls)"))
    return "\n".join(out)


def conv_table(args) -> str:
    n, dim = 49, args.dim
    x = torch.randn(args.batch * n, dim, device=args.device)
    edge_index = dilated_knn_graph(x.view(args.batch, n, dim), args.k)

    def edge_conv():
        mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.BatchNorm1d(dim), nn.GELU())
        return EdgeConv(mlp, aggr="max")

    # A shuffled copy of the same edges defeats the fused k-NN path: generic propagate().
    shuffled = edge_index[:, torch.randperm(edge_index.size(1), device=edge_index.device)]
    layers = {
        "EdgeConv (max, MLP 2D->D)": (edge_conv, edge_index),
        "MRConv": (lambda: MRConv(dim, dim), edge_index),
        "MRConv, generic propagate": (lambda: MRConv(dim, dim), shuffled),
        "RGConv scalar gate": (lambda: RGConv(dim, dim), edge_index),
        "RGConv scalar, generic propagate": (lambda: RGConv(dim, dim), shuffled),
        "RGConv scalar, per-edge h, generic": (lambda: PerEdgeGateRGConv(dim, dim), shuffled),
        "RGConv channel gate": (lambda: RGConv(dim, dim, gate="channel"), edge_index),
        "RGConv channel, generic propagate": (
            lambda: RGConv(dim, dim, gate="channel"), shuffled),
        "RGConv channel, per-edge h, generic": (
            lambda: PerEdgeGateRGConv(dim, dim, gate="channel"), shuffled),
    }
    times = {}
    for name, (build, edges) in layers.items():
        layer = build().to(args.device).train()
        inp = x.clone().requires_grad_(True)

        def step(layer=layer, inp=inp, edges=edges):
            layer(inp, edges).sum().backward()

        times[name] = median_seconds(step, repeats=args.repeats, max_seconds=args.max_seconds)
    base = "EdgeConv (max, MLP 2D->D)"
    rows = [
        [name, f"{t * 1e3:.1f}", f"{t / times[base]:.3f}"] for name, t in times.items()
    ]
    return (
        f"Forward+backward, B={args.batch}, N={n}, D={dim}, k={args.k}; baseline: {base}\n"
        + format_table(["layer", "median ms", "time / EdgeConv"], rows)
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--sizes", type=int, nargs="+", default=[49, 196, 784])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="stop repeating a case after this long (median of what ran)")
    parser.add_argument("--device", default="auto",
                        help="'auto' (CUDA when available, else cpu), 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--skip-knn", action="store_true")
    parser.add_argument("--skip-conv", action="store_true")
    parser.add_argument("--dense-ops", action="store_true",
                        help="also profile the dense k-NN backend by operator")
    args = parser.parse_args(argv)
    args.device = resolve_device(args.device, parser)
    torch.manual_seed(0)
    print(machine_line())
    if not args.skip_knn:
        print(knn_table(args), "\n")
    if not args.skip_conv:
        print(conv_table(args))
    if args.dense_ops:
        print(dense_ops_tables(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
