"""Throughput of every registered model: images/s for inference and for a training step.

For each model, at batch 64 and 224×224 by default, the median over ``--repeats`` timed rounds
(after ``--warmup`` untimed runs) of

- inference: ``model.eval()`` forward under ``torch.inference_mode()``;
- training step: ``model.train()`` forward, label-smoothing cross-entropy, backward, SGD step;

printed as images/s with the ratio to ``resnet18_fer`` measured in the same run: each round
times every model once, and the ratio is the median over rounds of the per-round ratio, so
load from other processes on a shared machine affects both sides of a ratio alike. On CPU the
run uses ``--threads`` intra-op threads; with a GPU (``--device cuda``) it runs under
``torch.autocast`` (bfloat16) unless ``--no-amp``.

Usage: ``python benchmarks/throughput.py [--models face2nodes resnet18_fer] [--batch-size 64]
[--img-size 224] [--repeats 3] [--warmup 1] [--device auto] [--threads 2] [--only infer]``;
``--compile`` adds a ``torch.compile``-d twin of every model (timed in the same rounds; the
``x eager`` column is its speed over the eager model, first-call compilation excluded);
``--conv-paths`` instead times the RG-Conv execution paths (block's dense form, conv's gather
form, PyG ``propagate``) at the Face2Nodes size; ``--memory-formats`` instead times the training
step of each ``--models`` entry in channels-last against the same model in the default
(contiguous) format, e.g. at the demo's size::

    python benchmarks/throughput.py --memory-formats --models face2nodes --img-size 48 \
        --model-kwargs '{"grid_size": 4, "embed_dim": 128, "depth": 4}' --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
from functools import partial
import statistics
from typing import List, Sequence

import torch

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import format_table as table  # noqa: E402
from _timing import interleaved_seconds  # noqa: E402

import pyg_fer  # noqa: E402
from pyg_fer.nn import RGConv, dilated_knn, dilated_knn_graph
from pyg_fer.nn.loss import label_smoothing_cross_entropy

BASELINE = "resnet18_fer"


def conv_paths(device: torch.device, repeats: int) -> None:
    """RG-Conv (scalar gate) at the Face2Nodes size, three ways, forward only: a ``[B, N, k]``
    neighbour table (per-graph gated adjacency, ``bmm``), a ``[B N, k]`` table (gather along
    a dense ``k`` axis), and PyG's generic ``propagate`` over ``edge_index``."""
    b, n, d, k = 64, 49, 512, 9
    x = torch.randn(b, n, d, device=device)
    nbr = dilated_knn(x, k, 2)  # [B, N, k] local ids
    ei = dilated_knn_graph(x, k, 2)
    conv = RGConv(d, d).to(device).eval()
    flat = x.view(b * n, d)
    flat_nbr = ei[0].view(b * n, k)
    h = flat @ conv.gate_lin.weight.t()

    def propagate():
        aggr = conv.propagate(ei, x=(flat, flat), h=(h, h))
        return conv.act(conv.norm(conv.update_lin(torch.cat([flat, aggr], -1))))

    paths = {
        "propagate (scatter over edges)": propagate,
        "conv(x, neighbours=[BN, k]) (gather, k axis)": lambda: conv(flat, neighbours=flat_nbr),
        "conv(x, neighbours=[B, N, k]) (bmm)": lambda: conv(flat, neighbours=nbr),
        "dilated_knn_graph (for scale)": lambda: dilated_knn_graph(x, k, 2),
        "Linear 512->2048 (for scale)": lambda: torch.nn.functional.linear(
            flat, torch.randn(4 * d, d, device=device)),
    }
    with torch.inference_mode():
        times = interleaved_seconds(paths, repeats)
    base = statistics.median(times["propagate (scatter over edges)"])
    print(f"\n## RG-Conv paths, B={b}, N={n}, D={d}, k={k}, d=2, median of {repeats}\n")
    print(table(["path", "ms", "x propagate"], [
        [name, f"{statistics.median(t) * 1e3:.1f}", f"{statistics.median(t) / base:.2f}"]
        for name, t in times.items()
    ]))


def memory_formats(names: Sequence[str], kwargs: dict, args, device: torch.device) -> None:
    """Training step of each model, channels-last vs contiguous (the baseline), interleaved."""
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
    y = torch.randint(0, 7, (args.batch_size,), device=device)
    fmts = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    runs = {}
    for name in names:
        for fmt, mf in fmts.items():
            model = pyg_fer.create_model(name, num_classes=7, img_size=args.img_size, **kwargs)
            model = model.to(device, memory_format=mf).train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            runs[name, fmt] = (model, opt, x.contiguous(memory_format=mf))

    def step(key):
        model, opt, inp = runs[key]
        opt.zero_grad(set_to_none=True)
        label_smoothing_cross_entropy(model(inp), y, 0.1).backward()
        opt.step()

    times = interleaved_seconds({key: partial(step, key) for key in runs}, args.repeats,
                                args.warmup, label="train")
    rows = []
    for name, fmt in runs:
        t = statistics.median(times[name, fmt])
        speed = statistics.median(b / a for a, b in zip(
            times[name, fmt], times[name, "contiguous"], strict=True))
        rows.append([name, fmt, f"{args.batch_size / t:.1f}", f"{t:.3f}", f"{speed:.2f}"])
    print(f"\n## Training step by memory format, batch {args.batch_size}, {args.img_size}x"
          f"{args.img_size}, model kwargs {kwargs}, {device.type}, {torch.get_num_threads()} "
          f"threads, median of {args.repeats} (warmup {args.warmup}), torch {torch.__version__}\n")
    print(table(["model", "memory format", "train img/s", "s/step", "speed x contiguous"], rows))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="default: all registered")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    parser.add_argument("--no-amp", action="store_true", help="disable autocast on CUDA")
    parser.add_argument("--only", choices=["infer", "train"], default=None)
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile(model) (default mode, inductor)")
    parser.add_argument("--conv-paths", action="store_true",
                        help="only time the RG-Conv execution paths at the Face2Nodes size")
    parser.add_argument("--memory-formats", action="store_true",
                        help="only time training steps, channels-last vs contiguous")
    parser.add_argument("--model-kwargs", type=json.loads, default={},
                        help="JSON dict of extra create_model kwargs (throughput and "
                             "--memory-formats; applied to every model but the baseline)")
    args = parser.parse_args(argv)

    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    amp = device.type == "cuda" and not args.no_amp
    if args.conv_paths:
        conv_paths(device, max(args.repeats, 5))
        return
    if args.memory_formats:
        memory_formats(args.models or ["face2nodes", BASELINE], args.model_kwargs, args, device)
        return
    names = args.models or pyg_fer.list_models()
    if BASELINE not in names:
        names = [BASELINE, *names]
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
    y = torch.randint(0, 7, (args.batch_size,), device=device)

    def autocast():
        if amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def build(name):
        kwargs = {} if name == BASELINE else dict(args.model_kwargs)
        return pyg_fer.create_model(name, num_classes=7, img_size=args.img_size, **kwargs)

    variants = ["eager", "compiled"] if args.compile else ["eager"]
    models = {}
    for name in names:
        models[name, "eager"] = build(name).to(device)
        if args.compile:  # a compiled twin sharing the eager model's weights
            models[name, "compiled"] = torch.compile(models[name, "eager"])
    optims = {
        key: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for key, m in models.items()
    }

    def run_infer(key):
        model = models[key]
        model.eval()
        with torch.inference_mode(), autocast():
            model(x)

    def run_train(key):
        model, opt = models[key], optims[key]
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = label_smoothing_cross_entropy(model(x), y, 0.1)
        loss.backward()
        opt.step()

    # Rounds: every model once per round, so each ratio compares runs made close in time
    # (the machine may be shared); ratio columns are medians of per-round ratios.
    modes = [m for m in ("infer", "train") if args.only in (None, m)]
    times = {}
    for mode in modes:
        fn = run_infer if mode == "infer" else run_train
        per_key = interleaved_seconds({key: partial(fn, key) for key in models}, args.repeats,
                                      args.warmup, label=mode)
        times.update({(*key, mode): t for key, t in per_key.items()})

    def ratio(key, base, mode):
        return statistics.median(
            b / a for a, b in zip(times[(*key, mode)], times[(*base, mode)], strict=True)
        )

    def cols(name, variant, mode):
        if mode not in modes:
            return ["-"] * (4 if args.compile else 3)
        t = statistics.median(times[name, variant, mode])
        to_baseline = ratio((name, variant), (BASELINE, "eager"), mode)
        row = [f"{args.batch_size / t:.1f}", f"{to_baseline:.2f}"]
        if args.compile:
            row.append(f"{ratio((name, variant), (name, 'eager'), mode):.2f}")
        return row + [f"{t:.2f}"]

    rows: List[List[object]] = [
        [name if variant == "eager" else f"{name} (compiled)",
         *cols(name, variant, "infer"), *cols(name, variant, "train")]
        for name in names for variant in variants
    ]
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\n## Throughput, batch {args.batch_size}, {args.img_size}x{args.img_size}, {dev}, "
        f"{torch.get_num_threads()} threads, amp={amp}, model kwargs {args.model_kwargs}, "
        f"median of {args.repeats} (warmup {args.warmup}), torch {torch.__version__}\n"
    )
    per_mode = ["img/s", f"x {BASELINE}", *(["x eager"] if args.compile else []), "s/batch"]
    print(table(
        ["model", *[f"infer {c}" for c in per_mode], *[f"train {c}" for c in per_mode]], rows
    ))


if __name__ == "__main__":
    main()
