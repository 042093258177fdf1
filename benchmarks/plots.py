"""The figures of ``docs/experiments.md``, drawn from the results files the drivers record.

Nothing is trained here: every point comes from a ``--json`` file of ``ablations.py`` or
``agfn_regime.py`` (the ones behind the tables are in ``benchmarks/results/``). Error bars are
the standard deviation over seeds. Run from the repository root::

    python benchmarks/plots.py --out docs/img/experiments \\
        --efficiency benchmarks/results/ablations_frac10.json \\
                     benchmarks/results/ablations_frac30.json \\
                     benchmarks/results/ablations_demo.json \\
        --agfn benchmarks/results/agfn_regime_pilot.json benchmarks/results/agfn_regime.json \\
               benchmarks/results/agfn_probes.json benchmarks/results/agfn_regime_idpretrained.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"full": "C0", "resnet18_fer": "C1", "off": "C1", "agfn": "C0", "gcn": "C2"}
LABELS = {"full": "Face2Nodes (demo size)", "resnet18_fer": "ResNet-18",
          "off": "graph off (baseline)", "agfn": "AGFN", "gcn": "Baseline-GCN (cos > 0.5)"}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return (100 * statistics.fmean(values),
            100 * statistics.stdev(values) if len(values) > 1 else 0.0)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def efficiency(files: list[Path], arms: list[str], out: Path) -> None:
    """Test accuracy against the fraction of the training set, one line per arm."""
    points: dict[str, list[tuple[float, float, float]]] = {a: [] for a in arms}
    for f in files:
        data = json.loads(f.read_text())
        frac = data["args"]["train_fraction"]
        for arm in arms:
            accs = [r["acc"] for r in data["runs"] if r["arm"] == arm]
            if accs:
                points[arm].append((100 * frac, *_mean_std(accs)))
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for arm, pts in points.items():
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                    marker="o", capsize=3, color=COLOURS.get(arm), label=LABELS.get(arm, arm))
    ax.set_xscale("log")
    ax.set_xticks([10, 30, 100], ["10 %", "30 %", "100 %"])
    ax.set_xlabel("training images used (of 3 000), equal optimiser steps")
    ax.set_ylabel("test accuracy % (mean ± std, 3 seeds)")
    ax.axhline(100 / 7, color="grey", lw=0.8, ls=":", label="chance")
    ax.legend(fontsize=8)
    _save(fig, out / "data_efficiency.png")


def agfn_noise(data: dict, out: Path) -> None:
    """Accuracy after the extra epochs against the noise rate, per branch, into ``out``."""
    runs = data["runs"]
    noises = sorted({r["noise"] for r in runs})
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, branch in enumerate(("off", "agfn", "gcn")):
        pts = [_mean_std([r[branch] for r in runs if r["noise"] == n and branch in r])
               for n in noises if any(branch in r for r in runs if r["noise"] == n)]
        if len(pts) != len(noises):
            continue
        ax.errorbar([100 * n + (i - 1) * 0.6 for n in noises], [p[0] for p in pts],
                    yerr=[p[1] for p in pts], marker="o", capsize=3, color=COLOURS[branch],
                    label=LABELS[branch])
    ax.set_xlabel("training labels flipped to another class (%)")
    ax.set_ylabel("clean test accuracy % (mean ± std)")
    ax.legend(fontsize=8)
    _save(fig, out)


# AGFN's initial sampler (PoissonGraph's defaults, the public code's), which the runs keep.
ALPHA0, BETA0 = 1.4, 0.0

PROBE_LABELS = {"off": "no graph", "agfn_identity": "AGFN, paper's γ2",
                "agfn_fast_identity": "AGFN, {fast:g}× γ2", "gcn": "Baseline-GCN (cos > 0.5)",
                "oracle": "oracle graph (clean same-label pairs)"}


def agfn_probes(data: dict, out: Path) -> None:
    """Frozen-feature probe accuracy against the noise rate, one line per probe head (AGFN
    probes evaluated with the identity graph), into ``out``."""
    runs = data["runs"]
    noises = sorted({r["noise"] for r in runs})
    keys = [k for k in PROBE_LABELS if all(f"probe_{k}" in r for r in runs)]
    fast = data["args"].get("probe_fast_factor")  # recorded wherever an agfn_fast probe ran
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, key in enumerate(keys):
        pts = [_mean_std([r[f"probe_{key}"] for r in runs if r["noise"] == n]) for n in noises]
        ax.errorbar([100 * n + (i - len(keys) / 2) * 0.4 for n in noises], [p[0] for p in pts],
                    yerr=[p[1] for p in pts], marker="o", capsize=3,
                    label=PROBE_LABELS[key].format(fast=fast))
    ax.set_xlabel("training labels flipped to another class (%)")
    ax.set_ylabel("clean test accuracy % (mean ± std)")
    ax.set_title(f"head trained on frozen epoch-{data['args']['warmup']} features", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, out)


def agfn_curves(data: dict, out: Path) -> None:
    """Mean learning curves per branch at the lowest and highest noise rate."""
    runs = data["runs"]
    noises = sorted({r["noise"] for r in runs})
    shown = [noises[0], noises[-1]] if len(noises) > 1 else noises
    fig, axes = plt.subplots(1, len(shown), figsize=(4.6 * len(shown), 3.6), squeeze=False)
    warmup = data["args"]["warmup"]
    for ax, n in zip(axes[0], shown, strict=True):
        rs = [r for r in runs if r["noise"] == n]
        for branch in ("off", "agfn", "gcn"):
            curves = [r["curves"][branch] for r in rs if r["curves"].get(branch)]
            if not curves:
                continue
            if branch != "off":  # start the branch at the warm-up point it was copied from
                curves = [[r["curves"]["off"][warmup - 1]] + c for r, c in zip(rs, curves,
                                                                                strict=True)]
            epochs = [e for e, _, _ in curves[0]]
            mean = [100 * statistics.fmean(c[i][1] for c in curves) for i in range(len(epochs))]
            ax.plot(epochs, mean, marker=".", color=COLOURS[branch], label=LABELS[branch])
        if data["args"]["extra"] > 0:
            ax.axvline(warmup + 0.5, color="grey", lw=0.8, ls="--")
            ax.set_xlabel("epoch (graph inserted after the dashed line)")
        else:
            ax.set_xlabel("epoch (baseline only: where does it flatten?)")
        ax.set_title(f"{100 * n:.0f} % noisy labels")
        ax.set_ylabel("clean test accuracy % (mean of seeds)")
    axes[0][0].legend(fontsize=8)
    _save(fig, out)


def agfn_sampler(data: dict, out: Path) -> None:
    """α, β and the mean edge probability for same-/different-class pairs over training."""
    runs = data["runs"]
    noises = sorted({r["noise"] for r in runs})
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.2, 3.6))
    for j, n in enumerate(noises):
        rs = [r["agfn_stats"] for r in runs if r["noise"] == n and r.get("agfn_stats")]
        if not rs:
            continue
        epochs = [s["epoch"] for s in rs[0]]
        mean = {k: [statistics.fmean(x[i][k] for x in rs) for i in range(len(epochs))]
                for k in ("alpha", "beta", "p_same", "p_diff")}
        colour = plt.cm.viridis(j / max(1, len(noises) - 1))
        a1.plot(epochs, [a - ALPHA0 for a in mean["alpha"]], color=colour,
                label=f"{100 * n:.0f} % noise")
        a1.plot(epochs, [b - BETA0 for b in mean["beta"]], color=colour, ls="--")
        a2.plot(epochs, mean["p_same"], color=colour, label=f"{100 * n:.0f} % noise")
        a2.plot(epochs, mean["p_diff"], color=colour, ls="--")
    a1.set_title(f"change from the initial α = {ALPHA0}, β = {BETA0} (solid α, dashed β)",
                 fontsize=9)
    a1.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    a2.set_title("mean P(edge): solid same class, dashed other class")
    for ax in (a1, a2):
        ax.set_xlabel("epoch")
    a2.legend(fontsize=7)
    _save(fig, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/img/experiments"))
    ap.add_argument("--efficiency", type=Path, nargs="*", default=[],
                    help="ablations.py --json files, one per --train-fraction")
    ap.add_argument("--efficiency-arms", nargs="+", default=["full", "resnet18_fer"])
    ap.add_argument("--agfn", type=Path, nargs="*", default=[],
                    help="agfn_regime.py --json files; figures <stem>_noise.png, "
                         "_sampler.png (runs with --extra > 0), _curves.png, _probes.png")
    args = ap.parse_args(argv)
    if args.efficiency:
        efficiency(args.efficiency, args.efficiency_arms, args.out)
    for path in args.agfn:
        data = json.loads(path.read_text())
        stem = path.stem  # agfn_regime.json -> agfn_regime_noise.png, ...
        if data["args"]["extra"] > 0:
            agfn_noise(data, args.out / f"{stem}_noise.png")
            agfn_sampler(data, args.out / f"{stem}_sampler.png")
        agfn_curves(data, args.out / f"{stem}_curves.png")
        agfn_probes(data, args.out / f"{stem}_probes.png")


if __name__ == "__main__":
    main()
