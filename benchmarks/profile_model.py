"""Where a model's step time goes: ``torch.profiler`` by op, and ops and kernel launches per part.

Profiles ``--steps`` inference forwards or training steps (forward, label-smoothing
cross-entropy, backward, SGD step) of one registered model after ``--warmup`` unprofiled ones,
and prints, per step:

1. the top ``--top`` operators by self time on the device that ran them (CUDA time on a GPU,
   CPU time on the CPU), with calls per step;
2. for every part of the model (its top-level children; each element of a ``ModuleList`` such
   as Face2Nodes' RDGCN blocks is a part of its own): forward time, the PyTorch operators it
   dispatches (top-level ``aten::`` calls: one Python-side dispatch each) and, on CUDA, the
   kernel launches it makes (CUDA runtime launch calls: ``cudaLaunchKernel``, ``cuLaunchKernel``,
   ``cudaGraphLaunch``, memset/memcpy) — the launch count is what bounds a small model's speed
   on a GPU;
3. totals per step: operators and launches over all threads (training's backward included).

Parts are marked with ``torch.profiler.record_function`` from forward hooks, so they cover the
forward only (autograd runs the backward outside them); with ``--compile MODE`` the model runs
compiled and only the operator table and totals are printed.

Usage::

    python benchmarks/profile_model.py --model face2nodes --mode infer --device cuda --amp bf16
    python benchmarks/profile_model.py --model face2nodes --mode train --batch-size 8 \\
        --img-size 112 --threads 2 --json profile.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _seeded import write_json  # noqa: E402
from _steps import AMP_DTYPES, CUDAGRAPH_MODES, compile_model, grad_scaler  # noqa: E402
from _steps import infer_step, resolve_device, train_step  # noqa: E402
from _timing import format_table  # noqa: E402

import pyg_fer  # noqa: E402

PART_PREFIX = "part:"
#: CPU-side CUDA runtime/driver calls that put work on the device: one per kernel or graph.
LAUNCH_NAMES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx",
                "cudaGraphLaunch", "cudaMemsetAsync", "cudaMemcpyAsync")


def model_parts(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The model's top-level children; a ``ModuleList`` child contributes each element
    (``blocks.0``, ``blocks.1``, ...)."""
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            for i, sub in enumerate(child):
                yield f"{name}.{i}", sub
        else:
            yield name, child


@contextlib.contextmanager
def marked_parts(model: nn.Module) -> Iterator[list[str]]:
    """Wraps each part's forward in ``record_function("part:<name>")`` through forward hooks
    while the context is open; yields the part names in model order."""
    handles, names = [], []
    for name, part in model_parts(model):
        names.append(name)
        scopes: list[record_function] = []

        def pre(_module, _args, name=name, scopes=scopes):
            scope = record_function(PART_PREFIX + name)
            scope.__enter__()
            scopes.append(scope)

        def post(_module, _args, _out, scopes=scopes):
            scopes.pop().__exit__(None, None, None)

        handles += [part.register_forward_pre_hook(pre), part.register_forward_hook(post)]
    try:
        yield names
    finally:
        for h in handles:
            h.remove()


def _time(evt, kind: str) -> float:
    """An event's time in µs: ``kind`` in ``self_device``, ``device``, ``self_cpu``, ``cpu``
    (the device attributes were called ``cuda`` before PyTorch 2.4)."""
    names = {"self_device": ("self_device_time_total", "self_cuda_time_total"),
             "device": ("device_time_total", "cuda_time_total"),
             "self_cpu": ("self_cpu_time_total",), "cpu": ("cpu_time_total",)}[kind]
    for attr in names:
        if hasattr(evt, attr):
            return float(getattr(evt, attr))
    return 0.0


def _top_level_ops(events) -> Iterator:
    """The ``aten::`` events among ``events`` and their descendants that are not nested in
    another ``aten::`` event (one Python-side dispatch each)."""
    for evt in events:
        if evt.name.startswith("aten::"):
            yield evt
        else:
            yield from _top_level_ops(evt.cpu_children)


def _is_launch(name: str) -> bool:
    return name.startswith(LAUNCH_NAMES)


def summarise(events, part_names: Sequence[str], steps: int, on_cuda: bool, top: int) -> dict:
    """Per-step figures from the profiler's ``events()``: top ops, per-part counts, totals."""
    cpu_events = [e for e in events if e.device_type == torch.autograd.DeviceType.CPU]
    launches = [e for e in cpu_events if _is_launch(e.name)]
    parts = {}
    for name in part_names:
        spans = [e for e in cpu_events if e.name == PART_PREFIX + name]
        ops = list(_top_level_ops(child for span in spans for child in span.cpu_children))
        inside = [e for e in launches for s in spans if e.thread == s.thread
                  and s.time_range.start <= e.time_range.start
                  and e.time_range.end <= s.time_range.end]
        parts[name] = {
            "calls": len(spans) / steps,
            "cpu_ms": sum(_time(s, "cpu") for s in spans) / steps / 1e3,
            "device_ms": (sum(_time(op, "device") for op in ops) / steps / 1e3
                          if on_cuda else None),
            "ops": len(ops) / steps,
            "launches": len(inside) / steps if on_cuda else None,
        }
    # Top-level operators anywhere (backward included), from the roots of the event tree.
    all_ops = list(_top_level_ops(e for e in cpu_events if e.cpu_parent is None))
    kind = "self_device" if on_cuda else "self_cpu"
    by_name: dict[str, dict] = {}
    for e in cpu_events:
        if not e.name.startswith("aten::"):
            continue
        row = by_name.setdefault(e.name, {"calls": 0, "self_us": 0.0})
        row["calls"] += 1
        row["self_us"] += _time(e, kind)
    total = sum(r["self_us"] for r in by_name.values()) or 1.0
    ranked = sorted(by_name.items(), key=lambda kv: kv[1]["self_us"], reverse=True)[:top]
    return {
        "time_kind": "CUDA" if on_cuda else "CPU",
        "top_ops": [{"op": name, "calls": r["calls"] / steps, "self_ms": r["self_us"] / steps
                     / 1e3, "share": r["self_us"] / total} for name, r in ranked],
        "parts": parts,
        "total_ops": len(all_ops) / steps,
        "total_launches": len(launches) / steps if on_cuda else None,
        "total_self_ms": total / steps / 1e3,
    }


def render(summary: dict, title: str) -> str:
    kind = summary["time_kind"]
    lines = [f"\n## {title}\n", f"Top operators by self {kind} time, per step "
             f"(total {summary['total_self_ms']:.2f} ms)\n"]
    lines.append(format_table(["op", "calls", f"self {kind} ms", "share"], [
        [r["op"], f"{r['calls']:g}", f"{r['self_ms']:.3f}", f"{100 * r['share']:.1f} %"]
        for r in summary["top_ops"]]))
    if summary["parts"]:
        cuda = summary["total_launches"] is not None
        header = ["part", "forward CPU ms", *(["forward CUDA ms"] if cuda else []), "ops",
                  *(["kernel launches"] if cuda else [])]
        rows = []
        for name, p in summary["parts"].items():
            rows.append([name, f"{p['cpu_ms']:.2f}",
                         *([f"{p['device_ms']:.3f}"] if cuda else []), f"{p['ops']:g}",
                         *([f"{p['launches']:g}"] if cuda else [])])
        lines += ["\nForward, per part and step (top-level aten ops dispatched"
                  + (", CUDA launch calls" if cuda else "") + ")\n", format_table(header, rows)]
    lines.append(f"\nPer step, all threads: {summary['total_ops']:g} top-level ops"
                 + (f", {summary['total_launches']:g} launch calls"
                    if summary["total_launches"] is not None else ""))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="face2nodes")
    ap.add_argument("--model-kwargs", type=json.loads, default={})
    ap.add_argument("--mode", choices=["infer", "train"], default="infer")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--amp", choices=list(AMP_DTYPES), default=None,
                    help="autocast dtype (default: bf16 on CUDA, none on CPU)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", default=None, metavar="MODE",
                    help="profile torch.compile(model, mode=MODE) ('default' for the default)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, metavar="FILE")
    ap.add_argument("--trace", default=None, metavar="FILE",
                    help="also export a Chrome trace (chrome://tracing, Perfetto)")
    args = ap.parse_args(argv)

    device = resolve_device(args.device, ap)
    if args.threads:
        torch.set_num_threads(args.threads)
    on_cuda = device.type == "cuda"
    amp = args.amp or ("bf16" if on_cuda else "none")
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = pyg_fer.create_model(args.model, num_classes=7, img_size=args.img_size,
                                 **args.model_kwargs).to(device, memory_format=fmt)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size,
                    device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 7, (args.batch_size,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = grad_scaler(device, amp)
    run = model if args.compile is None else compile_model(model, args.compile)
    cudagraphs = args.compile in CUDAGRAPH_MODES

    def step():
        if args.mode == "infer":
            infer_step(run, x, device, amp, cudagraphs)
        else:
            train_step(run, x, y, opt, scaler, device, amp, cudagraphs)

    for _ in range(args.warmup):
        step()
    if on_cuda:
        torch.cuda.synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    hooks = marked_parts(model) if args.compile is None else contextlib.nullcontext([])
    with hooks as part_names, profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        if on_cuda:
            torch.cuda.synchronize(device)
    summary = summarise(prof.events(), part_names, args.steps, on_cuda, args.top)
    dev = (torch.cuda.get_device_name(device) if on_cuda
           else f"CPU, {torch.get_num_threads()} threads")
    title = (f"{args.model} {args.mode}, batch {args.batch_size}, {args.img_size}x"
             f"{args.img_size}, {dev}, amp {amp}, "
             f"{'channels_last' if args.channels_last else 'contiguous'}, "
             f"{args.compile or 'eager'}, {args.steps} steps after {args.warmup}, "
             f"torch {torch.__version__}")
    print(render(summary, title))
    summary.update(title=title, args=vars(args))
    if args.trace:
        prof.export_chrome_trace(args.trace)
    if args.json:
        write_json(args.json, summary)
    return summary


if __name__ == "__main__":
    main()
