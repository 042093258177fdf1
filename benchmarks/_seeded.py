"""Shared plumbing of the seeded experiment drivers (``noisy_labels.py``, ``ablations.py``).

Every run of a driver is a key (a tuple: arm, seed, ...) handed to a module-level function that
trains and returns a dict of results. :func:`run_keys` runs the keys one after another or in a
pool of spawned processes (each with its own torch thread count); :func:`mean_std`,
:func:`paired_delta` and :func:`paired_ci` summarise accuracies over seeds (the delta pairs runs
with the same seed: same initialisation, data order and noise); :func:`markdown_table` formats
the tables.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch.multiprocessing as mp

__all__ = ["mean_std", "paired_delta", "paired_ci", "paired_cells", "markdown_table", "run_keys",
           "write_json", "read_results", "settings_diff", "invocations"]

# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def _stats(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        raise ValueError("no values to summarise")
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else math.nan)


def mean_std(values: Sequence[float], scale: float = 100.0) -> str:
    """``"m ± s"`` of ``scale * values`` with one decimal (std is ``nan`` for one value)."""
    m, s = _stats(values)
    return f"{scale * m:.1f} ± {scale * s:.1f}"


def paired_delta(values: Sequence[float], base: Sequence[float], scale: float = 100.0) -> str:
    """``"+m ± s"``: mean and std of the per-seed differences ``values[i] - base[i]``."""
    if len(values) != len(base):
        raise ValueError(f"{len(values)} values but {len(base)} baseline values to pair")
    m, s = _stats([v - b for v, b in zip(values, base, strict=True)])
    return f"{scale * m:+.1f} ± {scale * s:.1f}"


def paired_ci(values: Sequence[float], base: Sequence[float], scale: float = 100.0) -> str:
    """``"[lo, hi]"``: the 95 % confidence interval of the mean per-seed difference (Student's
    t with n − 1 degrees of freedom; beyond 30 the 30-dof quantile, slightly conservative);
    ``"-"`` for a single pair."""
    if len(values) != len(base):
        raise ValueError(f"{len(values)} values but {len(base)} baseline values to pair")
    if len(values) < 2:
        return "-"
    m, s = _stats([v - b for v, b in zip(values, base, strict=True)])
    half = _T975[min(len(values) - 1, len(_T975)) - 1] * s / math.sqrt(len(values))
    return f"[{scale * (m - half):+.1f}, {scale * (m + half):+.1f}]"


def paired_cells(values: Sequence[float], base: Sequence[float]) -> list[str]:
    """The three table cells of ``values`` against ``base`` paired by seed: ``mean ± std``,
    the paired Δ and its 95 % interval."""
    return [mean_std(values), paired_delta(values, base), paired_ci(values, base)]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; every row must have as many cells as ``header``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {list(row)} has {len(row)} cells, header {len(header)}")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def _call(fn: Callable[[Hashable], dict], key: Hashable) -> tuple[Hashable, dict]:
    return key, fn(key)


def run_keys(keys: Sequence[Hashable], fn: Callable[[Hashable], dict], jobs: int = 1,
             initializer: Callable[..., None] | None = None, initargs: tuple = (),
             on_result: Callable[[Hashable, dict], None] | None = None) -> dict:
    """``{key: fn(key)}`` for every key, in this process (``jobs <= 1``) or in ``jobs`` spawned
    processes, each first running ``initializer(*initargs)`` (set its thread count, receive
    shared data). ``fn`` and ``initializer`` must be module-level functions (they are pickled
    by name). ``on_result(key, result)`` is called in this process as each run finishes."""
    results: dict = {}
    if jobs <= 1:
        if initializer is not None:
            initializer(*initargs)
        for key in keys:
            results[key] = fn(key)
            if on_result is not None:
                on_result(key, results[key])
        return results
    # Separate single-thread processes rather than more threads per run: at these small
    # sizes intra-op threading leaves cores idle.
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=initializer,
                             initargs=initargs) as pool:
        futures = [pool.submit(_call, fn, key) for key in keys]
        for fut in as_completed(futures):
            key, r = fut.result()
            results[key] = r
            if on_result is not None:
                on_result(key, r)
    return results


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (a sibling temporary file, then
    ``os.replace``): an interrupted driver leaves the previous complete file, never half of
    one, so it can be ``--reuse``-d."""
    path = Path(path)
    tmp_path = path.with_name(path.name + ".tmp")
    tmp_path.write_text(json.dumps(data, indent=1))
    tmp_path.replace(path)


def read_results(path: str | Path, flag: str) -> dict[str, Any]:
    """A driver's ``--json`` file given to ``flag`` (``--reuse``, ``--versus``): the whole
    record, which holds at least ``args`` (a dict) and ``runs`` (a list); anything else is a
    ``ValueError`` naming the flag and the file."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
        if not isinstance(record.get("args"), dict) or not isinstance(record.get("runs"), list):
            raise ValueError("no 'args' dict and 'runs' list")
    except (OSError, ValueError, AttributeError) as err:
        raise ValueError(f"{flag} {path}: not a results file of this script ({err})") from None
    return record


def settings_diff(recorded: dict[str, Any], args: Any, keys: Iterable[str]) -> dict[str, tuple]:
    """``{key: (recorded, now)}`` for each of ``keys`` whose recorded setting differs from
    ``args``' (a key missing from the record counts as recorded ``None``)."""
    return {k: (recorded.get(k), getattr(args, k)) for k in keys
            if recorded.get(k) != getattr(args, k)}


def invocations(reused: dict[str, Any] | None, computed: int, total_s: float) -> list[dict]:
    """The invocation history a results file records: those of the ``--reuse``-d file (if
    any, and if it recorded them), then this one's runs computed here and wall time. A file
    rewritten by a fully reused invocation thus keeps the wall time of the invocations that
    trained its runs."""
    earlier = list(reused.get("invocations", [])) if reused else []
    return earlier + [{"computed": computed, "total_s": round(total_s, 1)}]
