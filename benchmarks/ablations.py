"""Face2Nodes ablations (the paper's Tables 3-6) on SyntheticFER at the demo's operating point.

Every run is the ``synthetic_face2nodes`` recipe (``make demo``: 48 px, 3 000 training / 1 000
test images of unseen identities with expression intensity ≥ 0.4, the Face2Nodes augmentation,
Adam 1e-3 with weight decay 1e-4, a one-epoch linear warm-up then cosine, label smoothing 0.1,
batch 64, 8 epochs) trained through ``pyg_fer.engine.train``, with only the model swapped. An
arm is a registered model name plus keyword arguments over a common base (the demo's
Face2Nodes: ``img_size=48, grid_size=4, embed_dim=128, depth=4``; other models get only
``img_size``):

==================  ====================================================================
arm                 model and the change (paper table)
==================  ====================================================================
``full``            ``face2nodes``: MSF²PE, RG-Conv, k = 9, the paper's dilation schedule
``mr``              ``face2nodes_mr``: RG-Conv → MR-Conv (Table 4)
``edge``            ``face2nodes(conv="edge")``: RG-Conv → PyG ``EdgeConv`` (Table 4)
``stem``            ``face2nodes_stem``: MSF²PE → ViG's convolutional stem (Table 3)
``no_dilation``     ``dilations=[1] * depth`` (see below: equal to ``full`` at the demo size)
``k4``, ``k15``     k = 4 / k = 15 neighbours (k = 16 cannot exist with 16 nodes; k = 15 is
                    the complete graph, every other node)
``k4_dilated``      k = 4, dilation 2 in the second half of the blocks (``[1, 1, 2, 2]``,
                    the shape of the paper's 8-block schedule; compared with ``k4``)
``depth2``          2 RDGCN blocks instead of 4 (Table 5)
``grid7``           a 7×7 grid (N = 49) instead of 4×4 (Table 6)
``resnet18_fer``    the plain ResNet-18 classifier (the demo's baseline)
``vig_ti_fer``      ViG-Ti (stem, MR-Conv, width 192, 12 blocks) with a 4×4 grid at 48 px
==================  ====================================================================

The paper's dilation schedule ⌈l/4⌉ is 1 for blocks 1-4, and with 16 nodes k = 9 leaves room
for no dilation at all (a dilated graph needs k·d ≤ N − 1 candidates), so at the demo's depth
the full model has no dilation: ``no_dilation`` builds the same network as ``full`` and is
not run by default; ``k4_dilated`` vs ``k4`` is the dilation comparison this size allows.

The reported accuracy is the test accuracy after the **last** epoch (evaluated once, after it;
no model selection on the test set). Δ is the mean ± std over seeds of the per-seed difference
to the arm's reference (``full``, or ``k4`` for ``k4_dilated``): same seed, same data order and
augmentation draws; its 95 % confidence interval uses Student's t with N − 1 degrees of
freedom (with 3 seeds: mean ± 2.48 std). Seeds are 0..N-1; seed 0 is the demo's seed, but a run
here has one torch thread and evaluates once, after the last epoch, so its figure is not the
demo's printed one (CPU runs are bit-reproducible only for a given thread count).

``--trunk-weights FILE`` initialises the ResNet-18 trunk of every arm (not ``stem`` or
``vig_ti_fer``, which have none) from a checkpoint, e.g. the ``synthetic_identity_pretrain``
recipe's ``best.safetensors`` (identity pre-training, the stand-in for MS-Celeb-1M).

``ARM@E`` trains ``ARM`` for ``E`` epochs instead of ``--epochs`` (its own warm-up + cosine
schedule over ``E`` epochs), compared with the same reference: e.g. ``resnet18_fer@12`` is
ResNet-18 given Face2Nodes' wall time when a Face2Nodes training step costs 1.5× a ResNet-18
one (measure that ratio with ``benchmarks/throughput.py --only train`` at the same size).

``--versus FILE`` adds a second table: every arm against the same arm and seed recorded in
another ``--json`` file with other settings, e.g. pre-trained against from scratch::

    PYTHONPATH=. python benchmarks/ablations.py --arms full resnet18_fer \
        --trunk-weights runs/synthetic_identity_pretrain/best.safetensors \
        --reuse benchmarks/results/ablations_idpretrained.json \
        --versus benchmarks/results/ablations_demo.json

``--train-fraction f`` trains on the first ``round(f · 3000)`` training images (nested subsets:
a SyntheticFER sample depends only on its index) for a data-efficiency curve. ``--quick`` is a
toy size for CI (32 px, 64 + 32 images, 1 epoch, narrow models); its accuracies mean nothing.

Run from the repository root::

    PYTHONPATH=. python benchmarks/ablations.py --seeds 3 --jobs 2 \\
        --arms full mr stem edge resnet18_fer
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _seeded import markdown_table, mean_std, paired_cells, paired_ci, paired_delta  # noqa: E402
from _seeded import invocations, read_results, run_keys, settings_diff, write_json  # noqa: E402

from pyg_fer.data import build_dataset  # noqa: E402
from pyg_fer.engine import train  # noqa: E402
from pyg_fer.engine.config import load_config, merge, read_yaml, resolve_recipe  # noqa: E402
from pyg_fer.models import create_model  # noqa: E402

RECIPE = "synthetic_face2nodes"
# The demo's Face2Nodes; applied to every face2nodes-family arm below it.
F2N_BASE = {"grid_size": 4, "embed_dim": 128, "depth": 4}
# name: (registered model, kwargs over the base (None: no base, only img_size), reference arm)
ARMS: dict[str, tuple[str, dict[str, Any] | None, str]] = {
    "full": ("face2nodes", {}, "full"),
    "mr": ("face2nodes_mr", {}, "full"),
    "edge": ("face2nodes", {"conv": "edge"}, "full"),
    "stem": ("face2nodes_stem", {}, "full"),
    "no_dilation": ("face2nodes", {"dilations": "ones"}, "full"),
    "k4": ("face2nodes", {"k": 4}, "full"),
    "k15": ("face2nodes", {"k": 15}, "full"),
    "k4_dilated": ("face2nodes", {"k": 4, "dilations": "late2"}, "k4"),
    "depth2": ("face2nodes", {"depth": 2}, "full"),
    "grid7": ("face2nodes", {"grid_size": 7}, "full"),
    "resnet18_fer": ("resnet18_fer", None, "full"),
    "vig_ti_fer": ("vig_ti_fer", {"grid_size": 4}, "full"),
}
# Models without a ResNet-18 trunk (their own convolutional stem): no --trunk-weights.
NO_TRUNK = ("face2nodes_stem", "vig_ti_fer")
DEFAULT_ARMS = ["full", "mr", "stem", "edge", "resnet18_fer"]
# --quick: toy sizes for CI (accuracies are meaningless at this size).
QUICK = {"img_size": 32, "samples": 64, "test_samples": 32, "epochs": 1, "batch_size": 16,
         "f2n": {"grid_size": 4, "embed_dim": 32, "depth": 2}}


def split_arm(arm: str) -> tuple[str, int | None]:
    """``"resnet18_fer@12"`` -> ``("resnet18_fer", 12)``; ``"full"`` -> ``("full", None)``."""
    base, sep, epochs = arm.partition("@")
    if base not in ARMS:
        raise ValueError(f"unknown arm '{base}'; expected one of {sorted(ARMS)}, optionally "
                         "followed by @EPOCHS")
    if not sep:
        return base, None
    if not epochs.isdigit() or int(epochs) < 1:
        raise ValueError(f"arm '{arm}': the epochs after '@' must be a positive integer")
    return base, int(epochs)


def arm_epochs(arm: str, args: argparse.Namespace) -> int:
    """The epochs ``arm`` trains for: its ``@E``, else ``--epochs``."""
    return split_arm(arm)[1] or args.epochs


def _arm_type(arm: str) -> str:
    try:
        split_arm(arm)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return arm


def model_spec(arm: str, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The registered model name and its kwargs for ``arm`` at ``args``' size."""
    arm = split_arm(arm)[0]
    name, extra, _ = ARMS[arm]
    kwargs: dict[str, Any] = {"img_size": args.img_size}
    if extra is not None:
        if name == "vig_ti_fer":  # its own width/depth; only the grid follows the base
            kwargs.update(extra)
        else:
            kwargs.update(args.f2n_base)
            kwargs.update(extra)
        if kwargs.get("dilations") == "ones":
            kwargs["dilations"] = [1] * kwargs["depth"]
        elif kwargs.get("dilations") == "late2":  # the paper's [1]*4 + [2]*4 shape at any depth
            half = kwargs["depth"] // 2
            kwargs["dilations"] = [1] * half + [2] * (kwargs["depth"] - half)
    if getattr(args, "trunk_weights", None):
        if name in NO_TRUNK:
            raise ValueError(f"arm '{arm}' ({name}) has no ResNet-18 trunk for --trunk-weights")
        kwargs["weights"] = args.trunk_weights
    return name, kwargs


def run_config(arm: str, args: argparse.Namespace, seed: int, out: str) -> dict[str, Any]:
    """The demo recipe with ``arm``'s model, ``args``' size and ``seed``, as a config mapping."""
    data = read_yaml(resolve_recipe(RECIPE))
    name, kwargs = model_spec(arm, args)
    data["model"] = {"name": name, "kwargs": kwargs}
    epochs = arm_epochs(arm, args)
    return merge(data, {
        "data": {"img_size": args.img_size,
                 "options": {"img_size": args.img_size, "cache_dir": args.cache_dir},
                 "train_options": {"num_samples": num_train(args)},
                 "eval_options": {"num_samples": args.test_samples}},
        "train": {"epochs": epochs, "batch_size": args.batch_size, "seed": seed,
                  "progress": False, "num_threads": args.threads, "device": args.device,
                  "eval_every": epochs},
        "output": {"dir": out, "name": f"{arm.replace('@', '_ep')}_s{seed}",
                   "overwrite": True},
    })


def num_train(args: argparse.Namespace) -> int:
    n = round(args.train_fraction * args.samples)
    if n < args.batch_size:
        raise ValueError(f"--train-fraction {args.train_fraction} of {args.samples} images "
                         f"leaves {n}, fewer than one batch of {args.batch_size}")
    return n


def one_run(arm: str, seed: int, args: argparse.Namespace, out: str) -> dict[str, Any]:
    """Train one arm with one seed; the last epoch's test accuracies and the wall time."""
    final: dict[str, Any] = {}
    epochs = arm_epochs(arm, args)

    def on_epoch_end(epoch: int, model, record: dict) -> None:
        if epoch == epochs:
            final["acc"] = record["eval_acc"]
            final["mean_class_acc"] = record["eval_mean_class_acc"]
            final["train_acc"] = record["train_acc"]

    t0 = time.perf_counter()
    train(run_config(arm, args, seed, out), on_epoch_end=on_epoch_end)
    final["time_s"] = time.perf_counter() - t0
    return final


_STATE: dict[str, Any] = {}


def _init_worker(args: argparse.Namespace, out: str) -> None:
    _STATE.update(args=args, out=out)
    if args.threads:
        torch.set_num_threads(args.threads)


def _run_key(key: tuple[str, int]) -> dict[str, Any]:
    return one_run(*key, _STATE["args"], _STATE["out"])


def _report(key: tuple[str, int], r: dict[str, Any]) -> None:
    arm, seed = key
    print(f"  {arm} seed {seed}: test acc {100 * r['acc']:.1f}% (mean class "
          f"{100 * r['mean_class_acc']:.1f}%, train {100 * r['train_acc']:.1f}%) "
          f"in {r['time_s']:.0f} s", flush=True)


def render_cache(args: argparse.Namespace) -> None:
    """Render both splits into ``--cache-dir`` once, before the runs memory-map them."""
    cfg = load_config(run_config("full", args, 0, "unused"))
    for split, extra in ((cfg.data.train_split, cfg.data.train_options),
                         (cfg.data.eval_split, cfg.data.eval_options)):
        build_dataset(cfg.data.name, cfg.data.root, split, **dict(cfg.data.options, **extra))


# Settings that must match for a run recorded in a --json file to be reused.
SAME_RUN = ("img_size", "samples", "test_samples", "epochs", "batch_size", "train_fraction",
            "threads", "device", "f2n_base", "trunk_weights")


def load_reused(args: argparse.Namespace, keys: list[tuple[str, int]],
                earlier: dict[str, Any]) -> dict:
    """Runs of ``keys`` recorded in ``earlier`` (the ``--reuse`` file, an earlier ``--json``)
    with the same settings; CPU runs are bit-reproducible for a given thread count, so
    rerunning them would give the same figures."""
    diff = settings_diff(earlier["args"], args, SAME_RUN)
    if diff:
        raise ValueError(f"--reuse {args.reuse}: recorded with other settings (recorded, now): "
                         f"{diff}")
    wanted = set(keys)
    return {(r["arm"], r["seed"]): {k: v for k, v in r.items() if k not in ("arm", "seed")}
            for r in earlier["runs"] if (r["arm"], r["seed"]) in wanted}


VERSUS_SETTINGS = ("train_fraction", "epochs", "trunk_weights", "img_size", "samples")


def versus(results: dict, arms: list[str], seeds: int,
           path: str | Path) -> tuple[str, list[str], list[list[str]]]:
    """Every arm against the **same arm and seed** recorded in ``path`` under other settings
    (e.g. the same arms trained from scratch, or on all the training images): a title with
    that file's settings, and one row per arm with the paired Δ (this run − that one)."""
    recorded = read_results(path, "--versus")
    other_args = recorded["args"]
    other = {(r["arm"], r["seed"]): r["acc"] for r in recorded["runs"]}
    header = ["arm", "here: acc %", f"{Path(path).name}: acc %", "Δ (points)", "95 % CI of Δ"]
    rows = []
    for arm in arms:
        here = [results[(arm, s)]["acc"] for s in range(seeds)]
        there = [other.get((arm, s)) for s in range(seeds)]
        if any(a is None for a in there):
            missing = [s for s, a in enumerate(there) if a is None]
            rows.append([arm, mean_std(here), f"seeds {missing} not recorded", "-", "-"])
            continue
        cells = paired_cells(here, there)
        rows.append([arm, cells[0], mean_std(there), *cells[1:]])
    there = ", ".join(f"{k} {other_args.get(k)!r}" for k in VERSUS_SETTINGS)  # absent: None
    return f"Against the same arm and seed in {path} (there: {there})", header, rows


def summarise(results: dict, arms: list[str], seeds: int, params: dict[str, float],
              epochs: int) -> tuple[list[str], list[list[str]]]:
    """The table: one row per arm; Δ against the arm's reference when it ran."""
    header = ["arm", "model", "changed kwargs", "epochs", "params (M)",
              "test acc % (mean ± std)",
              "per seed", "Δ vs ref (points)", "95 % CI of Δ", "ref",
              "wall s per run (median)"]
    rows = []
    for arm in arms:
        accs = [results[(arm, s)]["acc"] for s in range(seeds)]
        base, own_epochs = split_arm(arm)
        ref = ARMS[base][2]
        if arm == ref:
            delta, ci, ref_name = "0 (reference)", "-", "-"
        elif ref in arms:
            ref_accs = [results[(ref, s)]["acc"] for s in range(seeds)]
            delta, ci, ref_name = paired_delta(accs, ref_accs), paired_ci(accs, ref_accs), ref
        else:
            delta, ci, ref_name = "-", "-", f"{ref} (not run)"
        name, extra, _ = ARMS[base]
        rows.append([
            arm, name, json.dumps(extra) if extra else "-", own_epochs or epochs,
            f"{params[arm]:.2f}",
            mean_std(accs), " / ".join(f"{100 * a:.1f}" for a in accs), delta, ci, ref_name,
            f"{statistics.median(results[(arm, s)]['time_s'] for s in range(seeds)):.0f}"])
    return header, rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", nargs="+", default=DEFAULT_ARMS, type=_arm_type,
                    help=f"of {', '.join(sorted(ARMS))}; ARM@E trains ARM for E epochs")
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    ap.add_argument("--jobs", type=int, default=2,
                    help="runs in parallel processes, each with --threads threads")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per run (1 avoids oversubscribing a shared machine)")
    ap.add_argument("--train-fraction", type=float, default=1.0,
                    help="train on the first round(f * samples) training images")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--img-size", type=int, default=48)
    ap.add_argument("--samples", type=int, default=3000, help="training images (before "
                    "--train-fraction)")
    ap.add_argument("--test-samples", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--quick", action="store_true",
                    help="toy size for CI: 32 px, 64/32 images, 1 epoch, D=32, depth 2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache-dir", default=".cache/synthetic_fer",
                    help="rendered SyntheticFER images (memory-mapped by every run)")
    ap.add_argument("--out", default=None, help="keep the run folders here (default: temp)")
    ap.add_argument("--json", default=None, help="also write every run's results here")
    ap.add_argument("--trunk-weights", default=None,
                    help="initialise the ResNet-18 trunk of every arm from this file (e.g. the "
                         "synthetic_identity_pretrain recipe's best.safetensors)")
    ap.add_argument("--versus", default=None,
                    help="a --json file with other settings (e.g. without --trunk-weights): "
                         "also print each arm's Δ against the same arm and seed in it")
    ap.add_argument("--reuse", default=None,
                    help="a --json file of an earlier invocation with the same settings: its "
                         "runs of the requested arms and seeds are taken, not rerun")
    args = ap.parse_args(argv)
    args.f2n_base = dict(F2N_BASE)
    if args.quick:
        for key in ("img_size", "samples", "test_samples", "epochs", "batch_size"):
            setattr(args, key, QUICK[key])
        args.f2n_base = dict(QUICK["f2n"])
    if not 0.0 < args.train_fraction <= 1.0:
        ap.error(f"--train-fraction must be in (0, 1], got {args.train_fraction}")
    arms = list(dict.fromkeys(args.arms))
    if "no_dilation" in arms and all(
            d == 1 for d in create_model(*model_spec("full", args)).dilations):
        print("note: at this size the full model's dilation schedule is all 1s, so "
              "'no_dilation' builds the same network as 'full'")

    t_all = time.perf_counter()
    params = {}
    for arm in arms:  # also validates every arm's kwargs before any run starts
        name, kwargs = model_spec(arm, args)
        params[arm] = sum(p.numel() for p in create_model(name, **kwargs).parameters()) / 1e6
    render_cache(args)
    print(f"{len(arms)} arms × {args.seeds} seeds at {args.img_size}px, "
          f"{num_train(args)} training / {args.test_samples} test images, {args.epochs} "
          f"epochs; {args.jobs} jobs × {args.threads} threads; data ready in "
          f"{time.perf_counter() - t_all:.0f} s", flush=True)

    keys = [(arm, seed) for seed in range(args.seeds) for arm in arms]
    # read once, before this invocation's --json (possibly the same file) is rewritten
    earlier = read_results(args.reuse, "--reuse") if args.reuse else None
    reused = load_reused(args, keys, earlier) if earlier else {}
    if reused:
        print(f"reusing {len(reused)} runs of {args.reuse}: "
              + ", ".join(f"{a} seed {s}" for a, s in sorted(reused)), flush=True)
    done = dict(reused)

    def on_result(key: tuple[str, int], r: dict[str, Any]) -> None:
        _report(key, r)
        done[key] = r
        if args.json:  # every finished run at once: an interrupted invocation can be --reused
            write_json(args.json, {"args": vars(args), "partial": True, "runs": _runs(done),
                                   "invocations": invocations(earlier, len(done) - len(reused),
                                                              time.perf_counter() - t_all)})

    with tempfile.TemporaryDirectory() as tmp:
        results = run_keys([k for k in keys if k not in reused], _run_key, args.jobs,
                           _init_worker, (args, args.out or tmp), on_result)
    results.update(reused)
    total = time.perf_counter() - t_all

    header, rows = summarise(results, arms, args.seeds, params, args.epochs)
    print(f"\nTest accuracy after the last epoch, mean ± std over {args.seeds} seeds; Δ = arm − "
          f"ref, paired by seed (points)")
    print(markdown_table(header, rows))
    times = [r["time_s"] for r in results.values()]
    print(f"\n{len(times)} runs ({len(reused)} reused), median {statistics.median(times):.0f} s "
          f"per run; total wall time of this invocation {total:.0f} s")
    summary = {"args": vars(args), "header": header, "rows": rows, "runs": _runs(results),
               "total_s": total,  # this invocation's; "invocations": every one behind the runs
               "invocations": invocations(earlier, len(results) - len(reused), total)}
    if args.versus:
        title, vheader, vrows = versus(results, arms, args.seeds, args.versus)
        print(f"\n{title}; Δ = here − there, paired by seed (points)")
        print(markdown_table(vheader, vrows))
        summary["versus"] = {"title": title, "header": vheader, "rows": vrows}
    if args.json:
        write_json(args.json, summary)
    return summary


def _runs(results: dict) -> list[dict[str, Any]]:
    return [{"arm": a, "seed": s, **r} for (a, s), r in sorted(results.items())]


if __name__ == "__main__":
    main()
