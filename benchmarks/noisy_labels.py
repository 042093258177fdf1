"""AGFN §4.3 on SyntheticFER: test accuracy of a backbone with and without AGFN under label noise.

Every run goes through the training engine (``pyg_fer.engine.train``): the recipe is built here
as a config mapping, the datasets are SyntheticFER rendered once into memory
(``benchmarks/_fer_tensors.py``), and the engine injects the label noise
(``data.label_noise``: exactly round(r·n) training labels moved to another class,
``pyg_fer.data.add_label_noise``, seeded by the run's seed). Test labels are clean.

Arms (``--arms``):

- ``resnet18_fer``: the ResNet-18 baseline, cross-entropy (the engine's standard mode);
- ``agfn_resnet18``: ResNet-18 → 512-d features → AGFN → classifier in the engine's AGFN
  coordinate-descent mode (γ2 = ``--graph-lr`` on α, β; the baseline for ``--pretrain-epochs``
  epochs first, as in §4.1), loss ``--loss``;
- ``agfn_off``: the same ``agfn_resnet18`` network and loss with the graph never switched on
  (the identity graph in training and test) — the ablation that isolates the graph;
- ``baseline_gcn_resnet18``: AGFN's Table 1 Baseline-GCN (cosine > 0.5 graph), cross-entropy.

The reported accuracy is that of the **last** epoch (not the best epoch on the test set, which
would hide the memorisation of noisy labels). AGFN arms are evaluated with every evaluation graph
(``bank``, ``expected`` over test batches of ``--eval-batch-size``, ``identity``); the main
column uses the model's default. A second table gives the sampler's α, β after training and the
mean edge probability P over same- and different-class pairs of 256 test images.
``--agfn-kwargs`` passes model options to the AGFN arms (e.g. ``'{"feature_activation":
"none"}'``). The difference to the first arm is the mean ± std over seeds
of the per-seed difference (same seed: same initialisation, data order and noisy labels).
``--json FILE`` records the settings and every run; ``--versus FILE`` pairs this invocation's
arms with those of such a file (same data and training, other arms or ``--agfn-kwargs``) by
noise rate and seed, so the two AGFN estimators compare seed by seed across invocations.

Default size (CPU, ≤ 20 min on 2 cores: 1135 s measured on a quiet 2-core machine): 32×32 px,
1 000 training / 500 test images with expression intensity ≥ 0.6 (``--min-intensity``; the
dataset default 0.15 is too hard to learn in this budget), batch 32, 8 epochs (AGFN inserted
after 3), 3 seeds, 0/10/20 % noise, two arms — 18 runs, two at a time in separate processes of
one torch thread each (``--jobs 2 --threads 1``). The baseline then reaches about 33 % on clean
labels (chance 14.3 %), still far from converged; scale up on a GPU, e.g.::

    python benchmarks/noisy_labels.py --img-size 112 --samples 10000 --test-samples 2000 \\
        --min-intensity 0.15 --epochs 40 --pretrain-epochs 10 --batch-size 256 --seeds 5 \\
        --device cuda --threads 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fer_tensors import TensorFER, render  # noqa: E402
from _seeded import invocations, markdown_table, mean_std, paired_delta, read_results  # noqa: E402
from _seeded import run_keys, settings_diff, write_json  # noqa: E402

from pyg_fer.engine import evaluate, train  # noqa: E402


def train_quietly(cfg: dict, **kwargs):
    """``train``, without the warning that AGFN is never switched on: the graph-off arms keep
    it off on purpose (``agfn.pretrain_epochs >= train.epochs``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"agfn\.pretrain_epochs .* never switched on",
                                category=UserWarning)
        return train(cfg, **kwargs)

ARMS = ("resnet18_fer", "agfn_resnet18", "agfn_off", "baseline_gcn_resnet18")
EVAL_GRAPHS = ("bank", "expected", "identity")


def run_config(arm: str, args: argparse.Namespace, noise: float, seed: int, out: str) -> dict:
    agfn_family = arm in ("agfn_resnet18", "agfn_off")
    model = "agfn_resnet18" if agfn_family else arm
    kwargs: dict = {}
    if agfn_family:
        kwargs.update(args.agfn_kwargs)
        kwargs["bank_size"] = args.batch_size - 1
        if args.eval_graph:
            kwargs["eval_graph"] = args.eval_graph
    return {
        "model": {"name": model, "kwargs": kwargs},
        "data": {"name": "synthetic", "img_size": args.img_size, "label_noise": noise,
                 "label_noise_seed": seed},
        "optim": {"name": args.optim, "lr": args.lr, "weight_decay": 1e-4, "momentum": 0.9},
        "schedule": {"name": "cosine"},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size,
                  "eval_batch_size": args.eval_batch_size, "seed": seed,
                  "label_smoothing": 0.0, "device": args.device, "progress": False,
                  "num_threads": args.threads, "eval_every": args.epochs},
        "agfn": {"enabled": agfn_family, "graph_lr": args.graph_lr, "loss": args.loss,
                 "pretrain_epochs": args.epochs if arm == "agfn_off" else args.pretrain_epochs},
        "output": {"dir": out, "name": f"{arm}_n{round(100 * noise)}_s{seed}",
                   "overwrite": True},
    }


# The test images the edge statistics (P same / different class, degree) are computed over.
STATS_IMAGES = 256


@torch.no_grad()
def graph_stats(model, norm, test_ds: TensorFER, n: int = STATS_IMAGES) -> dict:
    """Mean edge probability P over same-class and different-class pairs of the first ``n``
    test images (the graph a training batch of their size would sample from)."""
    was_training = model.training
    model.eval()
    x = torch.stack([test_ds[i][0] for i in range(min(n, len(test_ds)))])
    y = torch.tensor(test_ds.targets[:len(x)])
    stats = edge_stats(norm.graph, model.extract(x), y)
    model.train(was_training)
    return stats


@torch.no_grad()
def edge_stats(graph, feats: torch.Tensor, y: torch.Tensor) -> dict:
    """``p_same`` / ``p_diff``: mean edge probability of ``graph`` (a ``PoissonGraph``) over
    the same-label and different-label pairs of ``feats`` (self-pairs excluded); ``degree``:
    the mean expected degree."""
    prob = graph.probabilities(feats)
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    diff = y[:, None] != y[None, :]
    return {"p_same": prob[same].mean().item(), "p_diff": prob[diff].mean().item(),
            "degree": prob.sum(1).mean().item()}


def one_run(arm: str, args, noise: float, seed: int, train_ds: TensorFER, test_ds: TensorFER,
            out: str) -> dict:
    final: dict = {}

    def on_epoch_end(epoch: int, model, record: dict) -> None:
        if epoch != args.epochs:
            return
        final["acc"] = record["eval_acc"]
        norm = getattr(model, "graph_norm", None)
        if arm == "agfn_resnet18" and hasattr(norm, "eval_graph"):
            default = norm.eval_graph
            for g in EVAL_GRAPHS:
                norm.eval_graph = g
                final[g] = evaluate(model, test_ds, batch_size=args.eval_batch_size)[
                    "overall_acc"]
            norm.eval_graph = default
            final["alpha"] = norm.graph.alpha.item()
            final["beta"] = norm.graph.beta.item()
            final.update(graph_stats(model, norm, test_ds))

    t0 = time.perf_counter()
    cfg = run_config(arm, args, noise, seed, out)
    # A fresh copy of the clean labels per run: the engine writes the noisy ones into it.
    train_quietly(cfg, train_dataset=train_ds.copy(), eval_dataset=test_ds.copy(),
                  on_epoch_end=on_epoch_end)
    final["time_s"] = time.perf_counter() - t0
    return final


_DATA: dict = {}


def _init_worker(train_ds: TensorFER, test_ds: TensorFER, args, out: str) -> None:
    _DATA.update(train=train_ds, test=test_ds, args=args, out=out)
    if args.threads:
        torch.set_num_threads(args.threads)


def _run_key(key: tuple) -> dict:
    arm, noise, seed = key
    return one_run(arm, _DATA["args"], noise, seed, _DATA["train"], _DATA["test"], _DATA["out"])


def _report(key: tuple, r: dict) -> None:
    arm, noise, seed = key
    extra = "".join(f" {g}={100 * r[g]:.1f}" for g in EVAL_GRAPHS if g in r)
    if "alpha" in r:
        extra += (f" α={r['alpha']:.3f} β={r['beta']:.3f} P same/diff class "
                  f"{r['p_same']:.3f}/{r['p_diff']:.3f} degree {r['degree']:.1f}")
    print(f"  noise {100 * noise:.0f}% seed {seed} {arm}: "
          f"acc {100 * r['acc']:.1f}%{extra} ({r['time_s']:.0f} s)", flush=True)


# Settings under which runs of two invocations are comparable seed by seed (--versus): the
# data, the noise draw and the training; the arms and the AGFN model options may differ.
SAME_DATA = ("img_size", "samples", "test_samples", "min_intensity", "epochs", "batch_size",
             "optim", "lr", "pretrain_epochs", "threads", "device")


def _runs(results: dict) -> list[dict]:
    return [{"arm": a, "noise": n, "seed": s, **r} for (a, n, s), r in sorted(results.items())]


def read_versus(path: str, args: argparse.Namespace) -> dict:
    """The ``--versus`` file: an earlier ``--json`` of this script with the same data and
    training settings (``SAME_DATA``), else a ``ValueError`` naming the settings that differ."""
    recorded = read_results(path, "--versus")
    diff = settings_diff(recorded["args"], args, SAME_DATA)
    if diff:
        raise ValueError(f"--versus {path}: recorded with other settings (recorded, now): {diff}")
    return recorded


def versus(results: dict, args: argparse.Namespace, path: str, recorded: dict) -> str:
    """Each arm here against each arm ``recorded`` in ``path`` (:func:`read_versus`; e.g.
    the same data with other ``--agfn-kwargs``), at the same noise rate and seed: Δ = here −
    there, mean ± std of the per-seed differences."""
    other = {(r["arm"], r["noise"], r["seed"]): r["acc"] for r in recorded["runs"]}
    there_arms = [a for a in recorded["args"].get("arms", []) if a in {k[0] for k in other}]
    pairs = [(a, b) for a in args.arms for b in there_arms]
    header = ["noise"] + [f"{a} − there {b}" for a, b in pairs]
    rows = []
    for noise in args.noise:
        row = [f"{100 * noise:.0f}%"]
        for a, b in pairs:
            there = [other.get((b, noise, s)) for s in range(args.seeds)]
            if None in there:
                row.append("not recorded there")
                continue
            row.append(paired_delta([results[(a, noise, s)]["acc"] for s in range(args.seeds)],
                                    there))
        rows.append(row)
    kwargs = json.dumps(recorded["args"].get("agfn_kwargs", {}))
    return (f"\nAgainst {path} (there: --agfn-kwargs {kwargs}); Δ = here − there, paired by "
            f"noise rate and seed (points)\n" + markdown_table(header, rows))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--samples", type=int, default=1000, help="training images")
    ap.add_argument("--test-samples", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    ap.add_argument("--arms", nargs="+", default=["resnet18_fer", "agfn_resnet18"],
                    choices=ARMS, help="the first one is the baseline of the differences")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eval-batch-size", type=int, default=256)
    ap.add_argument("--optim", default="adam", choices=["adam", "sgd"])
    ap.add_argument("--lr", type=float, default=1e-3, help="network learning rate γ1")
    ap.add_argument("--graph-lr", type=float, default=1e-3, help="α, β learning rate γ2")
    ap.add_argument("--loss", default="ce", choices=["ce", "mse"],
                    help="loss of the AGFN-mode arms (resnet18_fer/baseline_gcn: always ce)")
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--eval-graph", default=None, choices=EVAL_GRAPHS,
                    help="AGFN evaluation graph of the main column (default: the model's)")
    ap.add_argument("--min-intensity", type=float, default=0.6,
                    help="SyntheticFER's lowest expression intensity (higher: an easier task)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 avoids oversubscribing a shared machine)")
    ap.add_argument("--out", default=None, help="keep the run folders here (default: a temp dir)")
    ap.add_argument("--jobs", type=int, default=2,
                    help="runs in parallel processes, each with --threads threads")
    ap.add_argument("--json", default=None, metavar="FILE",
                    help="write the settings and every run's results here (after each run)")
    ap.add_argument("--versus", default=None, metavar="FILE",
                    help="a --json file of an invocation with the same data and training "
                         "settings (e.g. other --agfn-kwargs): also print each arm's Δ against "
                         "each arm there, paired by noise rate and seed")
    ap.add_argument("--agfn-kwargs", type=json.loads, default={},
                    help='JSON model kwargs for the AGFN arms, e.g. \'{"feature_activation": '
                         '"none"}\'')
    args = ap.parse_args(argv)
    if args.pretrain_epochs >= args.epochs and "agfn_resnet18" in args.arms:
        ap.error(f"--pretrain-epochs ({args.pretrain_epochs}) must be < --epochs "
                 f"({args.epochs}) for AGFN to be switched on")

    try:  # fail before hours of training, not after
        recorded = read_versus(args.versus, args) if args.versus else None
    except ValueError as err:
        ap.error(str(err))

    t_all = time.perf_counter()
    train_ds = render("train", args.samples, args.img_size, flip=True,
                      min_intensity=args.min_intensity)
    test_ds = render("test", args.test_samples, args.img_size,
                     min_intensity=args.min_intensity)
    print(f"rendered {args.samples}+{args.test_samples} SyntheticFER images at "
          f"{args.img_size}px in {time.perf_counter() - t_all:.0f} s; torch threads "
          f"{args.threads or torch.get_num_threads()}; {len(args.arms)} arms × "
          f"{len(args.noise)} noise levels × {args.seeds} seeds, {args.epochs} epochs each")

    keys = [(arm, noise, seed) for noise in args.noise for seed in range(args.seeds)
            for arm in args.arms]
    done: dict = {}

    def save(partial: bool) -> None:
        """The --json record of the runs done so far (after each run, then once complete)."""
        if args.json:
            record = {"args": vars(args), "runs": _runs(done),
                      "invocations": invocations(None, len(done), time.perf_counter() - t_all)}
            write_json(args.json, dict(record, partial=True) if partial else record)

    def on_result(key: tuple, r: dict) -> None:
        _report(key, r)
        done[key] = r
        save(partial=True)  # an interrupted invocation keeps its finished runs

    with tempfile.TemporaryDirectory() as tmp:
        results = run_keys(keys, _run_key, args.jobs, _init_worker,
                           (train_ds, test_ds, args, args.out or tmp), on_result)

    base = args.arms[0]
    seeds = range(args.seeds)
    print(f"\nTest accuracy (%) on clean labels, last epoch, mean ± std over {args.seeds} seeds; "
          f"Δ = arm − {base}, paired by seed")
    agfn_cols = [g for g in EVAL_GRAPHS] if "agfn_resnet18" in args.arms else []
    header = ["noise", base] + [c for a in args.arms[1:] for c in (a, "Δ")] + [
        f"agfn eval={g}" for g in agfn_cols]
    rows = []
    for noise in args.noise:
        base_accs = [results[(base, noise, s)]["acc"] for s in seeds]
        row = [f"{100 * noise:.0f}%", mean_std(base_accs)]
        for arm in args.arms[1:]:
            accs = [results[(arm, noise, s)]["acc"] for s in seeds]
            row += [mean_std(accs), paired_delta(accs, base_accs)]
        for g in agfn_cols:
            row.append(mean_std([results[("agfn_resnet18", noise, s)][g] for s in seeds]))
        rows.append(row)
    print(markdown_table(header, rows))
    if "agfn_resnet18" in args.arms:
        print("\nagfn_resnet18 sampler after training (mean over seeds): α, β, and mean P over "
              f"same-/different-class pairs of {min(STATS_IMAGES, len(test_ds))} test images")
        print("| noise | α | β | P same class | P different class | degree |")
        print("|---|---|---|---|---|---|")
        for noise in args.noise:
            rs = [results[("agfn_resnet18", noise, s)] for s in seeds]
            print(f"| {100 * noise:.0f}% | " + " | ".join(
                f"{statistics.fmean(r[k] for r in rs):.3f}"
                for k in ("alpha", "beta", "p_same", "p_diff")) +
                f" | {statistics.fmean(r['degree'] for r in rs):.1f} |")
    if args.versus:
        print(versus(results, args, args.versus, recorded))
    times = [r["time_s"] for r in results.values()]
    total = time.perf_counter() - t_all
    print(f"\n{len(times)} runs, median {statistics.median(times):.0f} s per run; "
          f"total wall time {total:.0f} s")
    save(partial=False)


if __name__ == "__main__":
    main()
