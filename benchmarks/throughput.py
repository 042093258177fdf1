"""Throughput of every registered model: images/s for inference and for a training step.

For each model, at batch 64 and 224×224 by default, the median over ``--repeats`` timed rounds
(after ``--warmup`` untimed runs) of

- inference: ``model.eval()`` forward under ``torch.inference_mode()``;
- training step: the engine's own step (``pyg_fer.engine.steps.standard_step``, through
  ``_steps.train_step``): forward, label-smoothing cross-entropy, backward, SGD step, with a
  ``GradScaler`` under float16 autocast;

printed as images/s with the ratio to ``resnet18_fer`` run with the same settings in the same
rounds: each round times every (model, settings) pair once, and a ratio is the median over
rounds of the per-round ratio, so load from other processes on a shared machine affects both
sides of a ratio alike. On a GPU, every row also gives the step's peak memory: what
``torch.cuda.max_memory_allocated`` rises above the memory already held before the step.

Settings (each a list; every combination is timed):

- ``--amp bf16 fp16 none``: autocast dtype (default ``bf16`` on CUDA, ``none`` on CPU);
- ``--memory-format contiguous channels_last``: input and model memory format;
- ``--compile [MODE ...]``: also a ``torch.compile``-d twin of every model per mode
  (``default``, ``reduce-overhead`` = CUDA graphs, ``max-autotune``, ...), sharing the eager
  model's weights; first-call compilation falls in the warm-up.

With more than one combination, ``x ref`` is each row's speed over the same model's first
combination (eager, first dtype, first format). ``--json FILE`` writes every per-round time.

Usage: ``python benchmarks/throughput.py [--models face2nodes resnet18_fer] [--batch-size 64]
[--img-size 224] [--repeats 3] [--warmup 1] [--device auto] [--threads 2] [--only infer]``.
``--conv-paths`` instead times the RG-Conv execution paths (block's dense form, conv's gather
form, PyG ``propagate``) at the Face2Nodes size; ``--memory-formats`` is short for
``--memory-format contiguous channels_last --only train``, e.g. at the demo's size::

    python benchmarks/throughput.py --memory-formats --models face2nodes --img-size 48 \
        --model-kwargs '{"grid_size": 4, "embed_dim": 128, "depth": 4}' --threads 2

and on a GPU, the full grid of issue 11::

    python benchmarks/throughput.py --device cuda --amp bf16 fp16 \
        --memory-format contiguous channels_last --compile default reduce-overhead
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _seeded import write_json  # noqa: E402
from _steps import AMP_DTYPES, CUDAGRAPH_MODES, compile_model, grad_scaler  # noqa: E402
from _steps import infer_step, resolve_device, train_step  # noqa: E402
from _timing import format_table as table  # noqa: E402
from _timing import RoundsInterrupted, interleaved_seconds  # noqa: E402

import pyg_fer  # noqa: E402
from pyg_fer.nn import RGConv, dilated_knn, dilated_knn_graph  # noqa: E402

BASELINE = "resnet18_fer"
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


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


@dataclass(frozen=True, repr=False)
class Setting:
    """One combination of the timed settings."""

    amp: str = "none"
    memory_format: str = "contiguous"
    compile: str = "eager"  # or a torch.compile mode

    def label(self) -> str:
        return f"{self.compile}, {self.amp}, {self.memory_format}"

    def __repr__(self) -> str:  # the per-round progress lines print the keys
        return f"[{self.label()}]"

    @property
    def cudagraphs(self) -> bool:
        """Whether this setting replays CUDA graphs (their memory is a private pool)."""
        return self.compile in CUDAGRAPH_MODES


def settings_grid(amps: Sequence[str], formats: Sequence[str], compile_modes: Sequence[str]
                  ) -> list[Setting]:
    """Every combination, eager before compiled, in the order given; the first is the
    reference of the ``x ref`` column."""
    return [Setting(a, f, c) for c, a, f in itertools.product(["eager", *compile_modes], amps,
                                                              formats)]


class Bench:
    """The models, optimisers and inputs of one run, and a step function per (model, setting).

    One eager model per (name, memory format); compiled twins share its weights, one per
    (name, format, mode). Optimisers are per eager model, gradient scalers per (model, setting).
    """

    def __init__(self, names: Sequence[str], settings: Sequence[Setting], device: torch.device,
                 batch_size: int, img_size: int, model_kwargs: dict) -> None:
        self.device = device
        self.settings = list(settings)
        torch.manual_seed(0)
        x = torch.randn(batch_size, 3, img_size, img_size, device=device)
        self.y = torch.randint(0, 7, (batch_size,), device=device)
        formats = {s.memory_format for s in settings}
        self.inputs = {f: x.contiguous(memory_format=MEMORY_FORMATS[f]) for f in formats}
        self.models: dict[tuple, torch.nn.Module] = {}
        self.optims: dict[tuple, torch.optim.Optimizer] = {}
        self.scalers: dict[tuple, torch.amp.GradScaler] = {}
        for name in names:
            kwargs = {} if name == BASELINE else dict(model_kwargs)
            for fmt in sorted(formats):
                torch.manual_seed(0)  # the same weights in every format
                model = pyg_fer.create_model(name, num_classes=7, img_size=img_size, **kwargs)
                model = model.to(device, memory_format=MEMORY_FORMATS[fmt])
                self.models[name, fmt, "eager"] = model
                self.optims[name, fmt] = torch.optim.SGD(model.parameters(), lr=1e-3,
                                                         momentum=0.9)
                for mode in {s.compile for s in settings} - {"eager"}:
                    self.models[name, fmt, mode] = compile_model(model, mode)
        self.keys = [(name, s) for name in names for s in settings]

    def _model(self, name: str, s: Setting) -> torch.nn.Module:
        return self.models[name, s.memory_format, s.compile]

    def infer(self, key: tuple[str, Setting]) -> None:
        name, s = key
        infer_step(self._model(name, s), self.inputs[s.memory_format], self.device, s.amp,
                   s.cudagraphs)

    def train(self, key: tuple[str, Setting]) -> None:
        name, s = key
        scaler = self.scalers.get(key)
        if scaler is None:
            scaler = self.scalers[key] = grad_scaler(self.device, s.amp)
        train_step(self._model(name, s), self.inputs[s.memory_format], self.y,
                   self.optims[name, s.memory_format], scaler, self.device, s.amp,
                   s.cudagraphs)

    def step(self, mode: str) -> Callable[[tuple[str, Setting]], None]:
        return self.infer if mode == "infer" else self.train


def peak_memory_mib(fn: Callable[[], None], device: torch.device) -> float | None:
    """How far ``fn`` raises ``torch.cuda.max_memory_allocated`` above what is allocated
    before it, in MiB; :obj:`None` off CUDA."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def median_ratio(times: dict, key, base) -> float:
    """Median over rounds of ``base``'s time over ``key``'s: ``key``'s speed relative to
    ``base`` (> 1 is faster)."""
    return statistics.median(b / a for a, b in zip(times[key], times[base], strict=True))


def summarise(bench: Bench, times: dict, memory: dict, batch_size: int) -> list[dict]:
    """One record per (model, setting, mode) timed: images/s, s/batch, ratios, peak MiB."""
    ref = bench.settings[0]
    records = []
    for (name, s, mode), t in times.items():
        med = statistics.median(t)
        records.append({
            "model": name, **asdict(s), "mode": mode, "seconds": t, "s_per_batch": med,
            "img_per_s": batch_size / med,
            "x_baseline": median_ratio(times, (name, s, mode), (BASELINE, s, mode)),
            "x_ref": median_ratio(times, (name, s, mode), (name, ref, mode)),
            "x_eager": (median_ratio(times, (name, s, mode), (name, Setting(
                s.amp, s.memory_format), mode)) if s.compile != "eager" else None),
            "peak_mib": memory.get((name, s, mode)),
        })
    return records


def render(records: list[dict], settings: Sequence[Setting], modes: Sequence[str]) -> str:
    """The markdown table: a row per (model, setting), columns per mode."""
    several = len(settings) > 1
    compiled = any(s.compile != "eager" for s in settings)
    by_key = {(r["model"], Setting(r["amp"], r["memory_format"], r["compile"]), r["mode"]): r
              for r in records}
    names = list(dict.fromkeys(r["model"] for r in records))
    header = ["model", *(["compile, amp, format"] if several else [])]
    for mode in modes:
        header += [f"{mode} img/s", f"x {BASELINE}", *([f"{mode} x ref"] if several else []),
                   *([f"{mode} x eager"] if compiled else []), f"{mode} s/batch",
                   f"{mode} peak MiB"]
    rows = []
    for name in names:
        for s in settings:
            row = [name, *([s.label()] if several else [])]
            for mode in modes:
                r = by_key[name, s, mode]
                row += [f"{r['img_per_s']:.1f}", f"{r['x_baseline']:.2f}",
                        *([f"{r['x_ref']:.2f}"] if several else [])]
                if compiled:
                    row.append("-" if r["x_eager"] is None else f"{r['x_eager']:.2f}")
                peak = r["peak_mib"]
                row += [f"{r['s_per_batch']:.4f}",
                        "-" if peak is None else ("graph pool" if s.cudagraphs else
                                                  f"{peak:.0f}")]
            rows.append(row)
    return table(header, rows)


def _raise_recompile_limit(limit: int) -> None:
    """Each (setting, train/eval) pair is one more compiled graph of the same ``forward``:
    let dynamo keep them all instead of falling back to eager after its default 8."""
    import torch._dynamo

    for attr in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, attr):
            setattr(torch._dynamo.config, attr, max(limit, getattr(torch._dynamo.config, attr)))


def main(argv: Sequence[str] | None = None) -> list[dict] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="default: all registered")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs first (at least 3 for CUDA-graph modes)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    parser.add_argument("--amp", nargs="+", choices=list(AMP_DTYPES), default=None,
                        help="autocast dtypes (default: bf16 on CUDA, none on CPU)")
    parser.add_argument("--no-amp", action="store_true", help="same as --amp none")
    parser.add_argument("--memory-format", nargs="+", choices=list(MEMORY_FORMATS),
                        default=["contiguous"])
    parser.add_argument("--only", choices=["infer", "train"], default=None)
    parser.add_argument("--compile", nargs="*", default=None, metavar="MODE",
                        help="also time torch.compile(model, mode=MODE) for each MODE "
                             "(none given: 'default')")
    parser.add_argument("--conv-paths", action="store_true",
                        help="only time the RG-Conv execution paths at the Face2Nodes size")
    parser.add_argument("--memory-formats", action="store_true",
                        help="short for --memory-format contiguous channels_last --only train")
    parser.add_argument("--model-kwargs", type=json.loads, default={},
                        help="JSON dict of extra create_model kwargs (applied to every model "
                             "but the baseline)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="write the settings and every per-round time here")
    args = parser.parse_args(argv)

    device = resolve_device(args.device, parser)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.conv_paths:
        conv_paths(device, max(args.repeats, 5))
        return None
    if args.memory_formats:
        args.memory_format, args.only = ["contiguous", "channels_last"], "train"
    amps = ["none"] if args.no_amp else (args.amp or ["bf16" if device.type == "cuda" else "none"])
    modes_compiled = [] if args.compile is None else (args.compile or ["default"])
    settings = settings_grid(amps, list(dict.fromkeys(args.memory_format)), modes_compiled)
    warmup = args.warmup
    if any(s.cudagraphs for s in settings):
        warmup = max(warmup, 3)  # eager warm-up, graph recording, then replays
    if modes_compiled:
        _raise_recompile_limit(4 * len(settings))
    names = args.models or pyg_fer.list_models()
    if BASELINE not in names:
        names = [BASELINE, *names]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    bench = Bench(names, settings, device, args.batch_size, args.img_size, args.model_kwargs)

    # Rounds: every (model, setting) once per round, so each ratio compares runs made close in
    # time (the machine may be shared); ratio columns are medians of per-round ratios.
    # Interrupted (a capped run), the modes timed so far are reported: whole rounds only.
    modes = [m for m in ("infer", "train") if args.only in (None, m)]
    times, memory, done, note = {}, {}, [], ""
    for mode in modes:
        fn = bench.step(mode)
        try:
            per_key = interleaved_seconds({key: partial(fn, key) for key in bench.keys},
                                          args.repeats, warmup, label=mode)
        except RoundsInterrupted as stop:
            per_key = stop.times
            note = f"; interrupted: {mode} over {len(next(iter(per_key.values())))} rounds"
        except KeyboardInterrupt:
            note = f"; interrupted before a whole {mode} round"
            break
        times.update({(*key, mode): t for key, t in per_key.items()})
        done.append(mode)
        if note:
            break
        try:
            for key in bench.keys:  # after the timing, so it never sits between timed runs
                memory[(*key, mode)] = peak_memory_mib(partial(fn, key), device)
        except KeyboardInterrupt:
            note = f"; interrupted while measuring {mode} memory"
            break
    if not done:
        raise KeyboardInterrupt(f"throughput.py{note}")
    records = summarise(bench, times, memory, args.batch_size)

    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\n## Throughput, batch {args.batch_size}, {args.img_size}x{args.img_size}, {dev}, "
        f"{torch.get_num_threads()} threads, model kwargs {args.model_kwargs}, median of "
        f"{args.repeats} (warmup {warmup}), torch {torch.__version__}{note}\n"
    )
    print(render(records, settings, done))
    if args.json:
        write_json(args.json, {
            "device": dev, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "args": {k: v for k, v in vars(args).items()}, "warmup": warmup,
            "settings": [asdict(s) for s in settings], "records": records,
            "interrupted": note or None,
        })
    return records


if __name__ == "__main__":
    main()
