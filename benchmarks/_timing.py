"""Timing helpers shared by the benchmark scripts: medians, ratios, plain-text tables."""

from __future__ import annotations

import statistics
import time
from typing import Callable, List, Sequence

import torch


def median_seconds(
    fn: Callable[[], object], repeats: int = 5, warmup: int = 1, max_seconds: float = 60.0
) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs (fewer if ``max_seconds`` runs out)."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    budget_end = time.perf_counter() + max_seconds
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if time.perf_counter() > budget_end:
            break
    return statistics.median(times)


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
