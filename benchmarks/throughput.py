"""Throughput of every registered model: images/s for inference and for a training step.

For each model, at batch 64 and 224×224 by default, the median over ``--repeats`` timed runs
(after ``--warmup`` untimed ones) of

- inference: ``model.eval()`` forward under ``torch.inference_mode()``;
- training step: ``model.train()`` forward, label-smoothing cross-entropy, backward, SGD step;

printed as images/s with the ratio to ``resnet18_fer`` measured in the same run. On CPU the
run uses ``--threads`` intra-op threads; with a GPU (``--device cuda``) it runs under
``torch.autocast`` (bfloat16) unless ``--no-amp``.

Usage: ``python benchmarks/throughput.py [--models face2nodes resnet18_fer] [--batch-size 64]
[--img-size 224] [--repeats 3] [--warmup 1] [--device auto] [--threads 2] [--only infer]``
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Callable, List, Sequence

import torch

import pyg_fer
from pyg_fer.nn.loss import label_smoothing_cross_entropy

BASELINE = "resnet18_fer"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int,
                   device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


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
    args = parser.parse_args(argv)

    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    amp = device.type == "cuda" and not args.no_amp
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

    results = {}
    for name in names:
        model = pyg_fer.create_model(name, num_classes=7).to(device)
        infer = train = float("nan")
        if args.only in (None, "infer"):
            model.eval()

            def run_infer(model=model):
                with torch.inference_mode(), autocast():
                    model(x)

            infer = args.batch_size / median_seconds(run_infer, args.repeats, args.warmup, device)
        if args.only in (None, "train"):
            model.train()
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

            def run_train(model=model, opt=opt):
                opt.zero_grad(set_to_none=True)
                with autocast():
                    loss = label_smoothing_cross_entropy(model(x), y, 0.1)
                loss.backward()
                opt.step()

            train = args.batch_size / median_seconds(run_train, args.repeats, args.warmup, device)
        results[name] = (infer, train)
        print(f"  {name}: infer {infer:.1f} img/s, train {train:.1f} img/s", flush=True)
        del model

    base_i, base_t = results[BASELINE]
    rows: List[List[object]] = []
    for name, (inf, tr) in results.items():
        rows.append([
            name, f"{inf:.1f}", f"{inf / base_i:.2f}", f"{args.batch_size / inf:.2f}",
            f"{tr:.1f}", f"{tr / base_t:.2f}", f"{args.batch_size / tr:.2f}",
        ])
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\n## Throughput, batch {args.batch_size}, {args.img_size}x{args.img_size}, {dev}, "
        f"{torch.get_num_threads()} threads, amp={amp}, median of {args.repeats} "
        f"(warmup {args.warmup}), torch {torch.__version__}\n"
    )
    print(table(
        ["model", "infer img/s", f"x {BASELINE}", "s/batch", "train img/s", f"x {BASELINE}",
         "s/step"],
        rows,
    ))


if __name__ == "__main__":
    main()
