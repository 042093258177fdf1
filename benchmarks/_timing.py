"""Timing helpers shared by the benchmark scripts: medians, ratios, plain-text tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Mapping, Sequence

import torch


def median_seconds(
    fn: Callable[[], object], repeats: int = 5, warmup: int = 1, max_seconds: float = 60.0
) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs (fewer if ``max_seconds`` runs out)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    budget_end = time.perf_counter() + max_seconds
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
        if time.perf_counter() > budget_end:
            break
    return statistics.median(times)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class RoundsInterrupted(KeyboardInterrupt):
    """Raised by :func:`interleaved_seconds` when interrupted after at least one whole round;
    ``times`` holds the complete rounds."""

    def __init__(self, times: dict[Hashable, list[float]]) -> None:
        super().__init__(f"interrupted after {len(next(iter(times.values())))} whole rounds")
        self.times = times


def interleaved_seconds(
    fns: Mapping[Hashable, Callable[[], object]], repeats: int, warmup: int = 1,
    label: str | None = None,
) -> dict[Hashable, list[float]]:
    """Wall times of every ``fns`` entry, one run of each per round, ``repeats`` rounds.

    Interleaving puts the runs a ratio compares close in time, so load from other processes
    on a shared machine affects both sides alike. ``label``: print each round's times.
    Interrupted (SIGINT, e.g. ``timeout --signal=INT``) after a whole round, it raises
    :class:`RoundsInterrupted` with the whole rounds, so a capped run still reports them.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[Hashable, list[float]] = {key: [] for key in fns}
    for r in range(repeats):
        try:
            for key, fn in fns.items():
                _sync()
                start = time.perf_counter()
                fn()
                _sync()
                times[key].append(time.perf_counter() - start)
        except KeyboardInterrupt:
            if r == 0:
                raise
            raise RoundsInterrupted({key: t[:r] for key, t in times.items()}) from None
        if label is not None:
            print(f"  {label} round {r + 1}: " + ", ".join(
                f"{key} {t[-1]:.3f}s" for key, t in times.items()), flush=True)
    return times


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-markdown table, columns padded for the terminal."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine_line() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads"
