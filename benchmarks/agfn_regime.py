"""AGFN in the paper's regime: a converged baseline first, then the graph inserted (AGFN §4.1).

The paper trains the ResNet-18 baseline for about ten epochs before it inserts AGFN. Here,
for every noise level and seed, one **warm-up** run trains ``agfn_resnet18`` with its batch
graph switched off (the baseline: each sample alone through the GCN weight) for ``--warmup``
epochs — choose it where the baseline's learning curve has flattened (``--warmup W --extra 0``
prints that curve) — and its run folder is copied at epoch ``W``. From that copy three
**branches** train ``--extra`` more epochs each, through ``pyg_fer.engine.train(resume=...)``
(same weights, optimiser state, learning rate, data order and noisy labels):

- ``off``: the same network, graph still off — the warm-up run itself, continued;
- ``agfn``: AGFN switched on (coordinate descent on α, β with lr ``--graph-lr``);
- ``gcn``: AGFN's Baseline-GCN (``baseline_gcn_resnet18``: the fixed cosine > 0.5 graph),
  its GCN and classifier weights taken from the warm-up.

The learning rate is constant (``--lr``, Adam) so that "converged" means the curve is flat at
the rate the branches go on with. Test labels are clean; the engine injects the training label
noise (exactly round(r·n) labels moved to another class, seeded by the run's seed, the same in
the warm-up and every branch). Every epoch is evaluated; the figure of a branch is the mean
test accuracy over its last three epochs (``--average-last``; at a constant learning rate the
last epoch alone jitters), Δ is paired by seed. The AGFN branch also records, every epoch, α,
β and the mean edge probability P over same-class and different-class pairs of 256 test
images, and is evaluated at the end with each evaluation graph (``bank``, ``expected``,
``identity``).

The **frozen-feature probe** isolates the graph from representation learning: at epoch ``W``
the warm-up's 512-d features of the training images (noisy labels) and test images are
extracted once, and only the head (GCN weight + classifier, from the warm-up) trains on them
for ``--probe-epochs`` epochs, without a graph, with AGFN (coordinate descent) and with the
cosine-threshold graph.

Two more probes, ``--probes ... agfn_fast oracle``, ask why the graph does not help where it
does not: ``agfn_fast`` is AGFN with α, β learning ``--probe-fast-factor`` (1000) times faster
than the paper's γ2 — can the sampler, if it moves, find a better graph? (at γ2 = 1e-3, α moves
by about 1e-4 in six epochs; 1000× lets it move by tenths) — and ``oracle`` links
exactly the pairs of the batch with the same **clean** label (a graph no method has: it is an
upper bound on what a batch graph can do for the head) and is evaluated, like AGFN's default,
with the identity graph. ``--extra 0`` runs the warm-up and the probes only.

``--trunk-weights FILE`` starts the warm-up's ResNet-18 trunk from a checkpoint (e.g. the
``synthetic_identity_pretrain`` recipe's, the stand-in for MS-Celeb-1M pre-training).

Default size (2 CPU cores): 32 px, 1 000 training / 500 test images of expression intensity
≥ 0.6, batch 32 (AGFN's Fig. 3: accuracy barely changes above a batch of 16), noise 0/10/20/
30/40 %, 3 seeds. ``--quick`` is a toy size for CI (its figures mean nothing). Run from the
repository root::

    PYTHONPATH=. python benchmarks/agfn_regime.py --warmup 12 --extra 6 --jobs 2 \\
        --json benchmarks/results/agfn_regime.json
"""

from __future__ import annotations

import argparse
import copy
import inspect
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fer_tensors import TensorFER, render  # noqa: E402
from _seeded import markdown_table, mean_std, paired_cells, read_results, run_keys  # noqa: E402
from _seeded import settings_diff, write_json  # noqa: E402
from noisy_labels import (  # noqa: E402
    EVAL_GRAPHS,
    STATS_IMAGES,
    edge_stats,
    graph_stats,
    train_quietly,
)

from pyg_fer.engine import evaluate  # noqa: E402
from pyg_fer.engine.agfn import coordinate_descent_step  # noqa: E402
from pyg_fer.engine.checkpoint import (  # noqa: E402
    read_card,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pyg_fer.models import create_model  # noqa: E402
from pyg_fer.models.card import card_model_kwargs, read_weights  # noqa: E402
from pyg_fer.nn import AGFN, CosineThresholdGCN  # noqa: E402

BRANCHES = ("off", "agfn", "gcn")
# Heads trained on the frozen features: no graph; AGFN at the paper's γ2; AGFN whose α, β
# learn --probe-fast-factor times faster; the cosine-threshold graph; the oracle graph.
PROBES = ("off", "agfn", "agfn_fast", "gcn", "oracle")
DEFAULT_PROBES = ("off", "agfn", "gcn")
AGFN_PROBES = ("agfn", "agfn_fast")
# What a results file written before an option existed ran with.
RECORDED_DEFAULTS = {"probes": list(DEFAULT_PROBES), "probe_fast_factor": 1000.0}


def recorded(args: argparse.Namespace, key: str) -> Any:
    """``args.key``, or what runs recorded before that option existed used."""
    return getattr(args, key, RECORDED_DEFAULTS.get(key))


# ----------------------------------------------------------------------------- recipes


def run_config(args: argparse.Namespace, noise: float, seed: int, run_dir: Path,
               branch: str) -> dict[str, Any]:
    """The recipe of the warm-up (``branch='off'``) or of a branch resumed from it."""
    total = args.warmup + args.extra
    kwargs: dict[str, Any] = {"bank_size": args.batch_size - 1}
    if branch == "off" and args.trunk_weights:  # the branches resume the warm-up's weights
        kwargs["weights"] = args.trunk_weights
    model = "agfn_resnet18" if branch in ("off", "agfn") else "baseline_gcn_resnet18"
    return {
        "model": {"name": model, "kwargs": kwargs if branch != "gcn" else {}},
        "data": {"name": "synthetic", "img_size": args.img_size, "label_noise": noise,
                 "label_noise_seed": seed},
        "optim": {"name": "adam", "lr": args.lr, "weight_decay": 1e-4},
        "schedule": {"name": "constant"},
        "train": {"epochs": total, "batch_size": args.batch_size,
                  "eval_batch_size": args.eval_batch_size, "seed": seed,
                  "label_smoothing": 0.0, "device": "cpu", "progress": False,
                  "num_threads": args.threads, "eval_every": 1},
        # The Baseline-GCN branch trains with plain cross-entropy (no graph parameters); the
        # warm-up and AGFN branch in AGFN mode with loss 'ce', the graph off until `warmup`.
        "agfn": {"enabled": branch != "gcn", "graph_lr": args.graph_lr, "loss": "ce",
                 "pretrain_epochs": total if branch == "off" else args.warmup},
        "output": {"dir": str(run_dir.parent), "name": run_dir.name, "overwrite": True},
    }


def _to_baseline_gcn(src: Path, dst: Path) -> None:
    """Rewrite the copied warm-up checkpoint ``dst/last`` as a ``baseline_gcn_resnet18``
    checkpoint: the same trunk, projection, GCN weight and classifier; no sampler or bank."""
    meta = read_card(src / "last.json")
    state = read_weights(meta)
    kwargs = card_model_kwargs(meta)
    kwargs = {k: v for k, v in kwargs.items() if k in ("num_classes", "class_names", "mean", "std",
                                                        "img_size", "in_chans", "feature_dim")}
    model = create_model("baseline_gcn_resnet18", **kwargs)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
    for stem in ("last", "best"):
        for suffix in (".json", ".safetensors"):
            (dst / f"{stem}{suffix}").unlink(missing_ok=True)
    extra = {"epoch": meta["epoch"], "config": meta.get("config")}
    for stem in ("last", "best"):  # the best so far is the warm-up's, which this converts
        save_checkpoint(model, dst / stem, metrics={}, extra=extra)


# ----------------------------------------------------------------------------- probe


class _ProbeHead(nn.Module):
    """The head of a batch-graph model (graph normalisation + classifier) on frozen features,
    with the engine's AGFN protocol (``graph_parameters`` / ``network_parameters``)."""

    def __init__(self, graph_norm: nn.Module, fc: nn.Linear) -> None:
        super().__init__()
        self.graph_norm, self.fc = graph_norm, fc

    def forward(self, x: Tensor, return_samples: bool = False) -> Tensor:
        if isinstance(self.graph_norm, (AGFN, _OracleGraphGCN)):
            return self.fc(self.graph_norm(x, return_samples=return_samples))
        out = self.fc(self.graph_norm(x))
        return out.unsqueeze(0) if return_samples else out

    def graph_parameters(self):
        return self.graph_norm.graph_parameters() if isinstance(self.graph_norm, AGFN) else iter(())

    def network_parameters(self):
        ids = {id(p) for p in self.graph_parameters()}
        return (p for p in self.parameters() if id(p) not in ids)


class _OracleGraphGCN(nn.Module):
    """A GCN over the batch graph linking every pair with the same clean label (training), and
    over no edges (evaluation: AGFN's identity graph). ``labels`` holds the current batch's
    clean labels; the probe's loop sets it before each step."""

    def __init__(self, gcn: nn.Module) -> None:
        super().__init__()
        self.gcn = gcn
        self.labels: Tensor | None = None

    def forward(self, x: Tensor, return_samples: bool = False) -> Tensor:
        if self.training:
            if self.labels is None or self.labels.numel() != x.size(0):
                raise RuntimeError("oracle probe: set .labels to the batch's clean labels")
            same = self.labels[:, None] == self.labels[None, :]
            same &= ~torch.eye(x.size(0), dtype=torch.bool, device=x.device)
            edge_index = same.nonzero().t()
        else:
            edge_index = torch.empty(2, 0, dtype=torch.long, device=x.device)
        out = self.gcn(x, edge_index)
        return out.unsqueeze(0) if return_samples else out


@torch.no_grad()
def _features(model: nn.Module, ds: TensorFER, batch: int = 256) -> Tensor:
    was = model.training
    model.eval()
    feats = [model.extract(torch.stack([ds[i][0] for i in range(s, min(s + batch, len(ds)))]))
             for s in range(0, len(ds), batch)]
    model.train(was)
    return torch.cat(feats)


@torch.no_grad()
def _probe_acc(head: _ProbeHead, x: Tensor, y: Tensor, batch: int) -> float:
    head.eval()
    correct = sum((head(x[s:s + batch]).argmax(1) == y[s:s + batch]).sum().item()
                  for s in range(0, len(x), batch))
    head.train()
    return correct / len(x)


def probe_graph_lr(probe: str, args: argparse.Namespace) -> float:
    """The α, β learning rate of an AGFN probe head: ``--graph-lr``, times
    ``--probe-fast-factor`` for ``agfn_fast``."""
    return args.graph_lr * (recorded(args, "probe_fast_factor") if probe == "agfn_fast" else 1.0)


def frozen_probe(model: nn.Module, train_ds: TensorFER, test_ds: TensorFER,
                 clean_targets: list[int], args: argparse.Namespace,
                 seed: int) -> dict[str, Any]:
    """Train only the head on the frozen warm-up features (``train_ds`` carries the noisy
    labels the head learns from; ``clean_targets`` only builds the oracle graph) with each of
    ``args.probes``; test accuracy (AGFN probes: per evaluation graph, with α and β)."""
    xtr, xte = _features(model, train_ds.copy(flip=False)), _features(model, test_ds)
    ytr, yte = torch.as_tensor(train_ds.targets), torch.as_tensor(test_ds.targets)
    yclean = torch.as_tensor(clean_targets)
    out: dict[str, Any] = {}
    for probe in args.probes:
        torch.manual_seed(seed)
        norm = copy.deepcopy(model.graph_norm)
        if probe == "gcn":
            gcn = CosineThresholdGCN(norm.gcn.in_channels, norm.gcn.out_channels)
            gcn.gcn.load_state_dict(norm.gcn.state_dict())
            norm = gcn
        elif probe == "oracle":
            norm = _OracleGraphGCN(norm.gcn)
        elif probe in AGFN_PROBES:
            norm.use_graph = True
            norm.reset_bank()
        head = _ProbeHead(norm, copy.deepcopy(model.fc)).train()
        opt = torch.optim.Adam(list(head.network_parameters()), lr=args.lr, weight_decay=1e-4)
        opt_graph = torch.optim.SGD(list(head.graph_parameters()) or [nn.Parameter(
            torch.zeros(()))], lr=probe_graph_lr(probe, args))
        for _ in range(args.probe_epochs):
            order = torch.randperm(len(xtr))
            for s in range(0, len(order) - args.batch_size + 1, args.batch_size):
                idx = order[s:s + args.batch_size]
                if probe in AGFN_PROBES:
                    coordinate_descent_step(head, xtr[idx], ytr[idx], opt, opt_graph,
                                            F.cross_entropy)
                    continue
                if probe == "oracle":
                    norm.labels = yclean[idx]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(head(xtr[idx]), ytr[idx]).backward()
                opt.step()
        if probe in AGFN_PROBES:
            for g in EVAL_GRAPHS:
                norm.eval_graph = g
                out[f"probe_{probe}_{g}"] = _probe_acc(head, xte, yte, args.eval_batch_size)
            out[f"probe_{probe}_alpha"] = norm.graph.alpha.item()
            out[f"probe_{probe}_beta"] = norm.graph.beta.item()
            stats = edge_stats(norm.graph, xte[:STATS_IMAGES], yte[:STATS_IMAGES])
            out.update({f"probe_{probe}_{k}": v for k, v in stats.items()})
        else:
            out[f"probe_{probe}"] = _probe_acc(head, xte, yte, args.eval_batch_size)
    return out


# ----------------------------------------------------------------------------- one pair


def one_pair(noise: float, seed: int, args: argparse.Namespace, train_ds: TensorFER,
             test_ds: TensorFER, out: Path) -> dict[str, Any]:
    """Warm-up, snapshot, probe and branches for one noise level and seed."""
    tag = f"n{round(100 * noise)}_s{seed}"
    warm_dir, snap = out / f"off_{tag}", out / f"snap_{tag}"
    total = args.warmup + args.extra
    res: dict[str, Any] = {"noise": noise, "seed": seed}
    curves: dict[str, list] = {b: [] for b in BRANCHES}
    stats: list[dict[str, float]] = []
    train_copy = train_ds.copy()  # the engine writes the noisy labels into it

    def off_epoch(epoch: int, model, record: dict) -> None:
        curves["off"].append([epoch, record["eval_acc"], record["train_acc"]])
        if epoch == args.warmup:
            shutil.copytree(warm_dir, snap, dirs_exist_ok=True)
            t = time.perf_counter()
            rng = rng_state()  # the probe draws; the warm-up must go on as the branches do
            res.update(frozen_probe(model, train_copy, test_ds, train_ds.targets, args, seed))
            set_rng_state(rng)
            res["probe_time_s"] = time.perf_counter() - t

    def agfn_epoch(epoch: int, model, record: dict) -> None:
        curves["agfn"].append([epoch, record["eval_acc"], record["train_acc"]])
        norm = model.graph_norm
        stats.append(dict(epoch=epoch, alpha=norm.graph.alpha.item(),
                          beta=norm.graph.beta.item(), **graph_stats(model, norm, test_ds)))
        if epoch == total:
            default = norm.eval_graph
            for g in EVAL_GRAPHS:
                norm.eval_graph = g
                res[f"agfn_{g}"] = evaluate(model, test_ds,
                                            batch_size=args.eval_batch_size)["overall_acc"]
            norm.eval_graph = default

    def gcn_epoch(epoch: int, model, record: dict) -> None:
        curves["gcn"].append([epoch, record["eval_acc"], record["train_acc"]])

    t0 = time.perf_counter()
    train_quietly(run_config(args, noise, seed, warm_dir, "off"), train_dataset=train_copy,
                  eval_dataset=test_ds.copy(), on_epoch_end=off_epoch)
    res["time_off_s"] = time.perf_counter() - t0
    for branch, callback in (("agfn", agfn_epoch), ("gcn", gcn_epoch)):
        if branch not in args.branches or args.extra == 0:
            continue
        bdir = out / f"{branch}_{tag}"
        shutil.copytree(snap, bdir, dirs_exist_ok=True)
        if branch == "gcn":
            _to_baseline_gcn(snap, bdir)
        t = time.perf_counter()
        train_quietly(run_config(args, noise, seed, bdir, branch),
                      train_dataset=train_ds.copy(), eval_dataset=test_ds.copy(), resume=bdir,
                      on_epoch_end=callback,
                      allow_recipe_changes=True)  # a branch: another recipe on the copied run
        res[f"time_{branch}_s"] = time.perf_counter() - t
    res["curves"] = curves
    res["agfn_stats"] = stats
    res["at_insertion"] = curves["off"][args.warmup - 1][1]
    for branch in BRANCHES:
        tail = [acc for epoch, acc, _ in curves[branch] if epoch > total - args.average_last]
        if tail:
            res[branch] = statistics.fmean(tail)
            res[f"{branch}_last"] = curves[branch][-1][1]
    if not args.keep_runs:
        for d in out.glob(f"*_{tag}"):
            shutil.rmtree(d, ignore_errors=True)
    return res


_DATA: dict[str, Any] = {}


def _init_worker(train_ds: TensorFER, test_ds: TensorFER, args, out: str) -> None:
    _DATA.update(train=train_ds, test=test_ds, args=args, out=Path(out))
    if args.threads:
        torch.set_num_threads(args.threads)


def _run_key(key: tuple[float, int]) -> dict[str, Any]:
    return one_pair(*key, _DATA["args"], _DATA["train"], _DATA["test"], _DATA["out"])


def _report(key: tuple[float, int], r: dict[str, Any]) -> None:
    noise, seed = key
    accs = " ".join(f"{b} {100 * r[b]:.1f}" for b in BRANCHES if b in r)
    probe = " ".join(f"{k[6:]} {100 * v:.1f}" for k, v in r.items()
                     if k.startswith("probe_") and not k.endswith(
                         ("_s", "alpha", "beta", "p_same", "p_diff", "degree")))
    print(f"  noise {100 * noise:.0f}% seed {seed}: at insertion {100 * r['at_insertion']:.1f} "
          f"| {accs} | probe {probe} ({sum(v for k, v in r.items() if k.startswith('time_')):.0f}"
          " s)", flush=True)


# ----------------------------------------------------------------------------- tables


def tables(results: dict, args: argparse.Namespace) -> str:
    seeds = range(args.seeds)
    probes = recorded(args, "probes")
    if args.extra == 0:
        header = ["epoch"] + [f"noise {100 * n:.0f}%" for n in args.noise]
        rows = []
        for e in range(args.warmup):
            rows.append([e + 1] + [mean_std([results[(n, s)]["curves"]["off"][e][1]
                                             for s in seeds]) for n in args.noise])
        return "\n".join([
            "Warm-up learning curve (test accuracy %, graph off, mean ± std over seeds)",
            markdown_table(header, rows), probe_tables(results, args, probes)])
    branches = [b for b in BRANCHES if b == "off" or b in args.branches]
    header = ["noise", "at insertion"]
    for b in branches:
        header += [b] if b == "off" else [b, f"Δ {b}", "95 % CI"]
    header += [f"agfn eval={g}" for g in EVAL_GRAPHS if "agfn" in branches]
    rows = []
    for n in args.noise:
        rs = [results[(n, s)] for s in seeds]
        off = [r["off"] for r in rs]
        row = [f"{100 * n:.0f}%", mean_std([r["at_insertion"] for r in rs]), mean_std(off)]
        for b in branches[1:]:
            accs = [r[b] for r in rs]
            row += paired_cells(accs, off)
        if "agfn" in branches:
            row += [mean_std([r[f"agfn_{g}"] for r in rs]) for g in EVAL_GRAPHS]
        rows.append(row)
    text = [f"Test accuracy % (mean of the last {args.average_last} epochs; mean ± std over "
            f"{args.seeds} seeds), {args.extra} epochs after insertion at epoch {args.warmup}; "
            "Δ paired by seed against 'off'", markdown_table(header, rows)]
    if "agfn" in branches:
        header = ["noise", "epoch", "α", "β", "P same class", "P different class", "degree"]
        rows = []
        for n in args.noise:
            for i in sorted({0, args.extra // 2, args.extra - 1}):
                st = [results[(n, s)]["agfn_stats"][i] for s in seeds]
                rows.append([f"{100 * n:.0f}%", st[0]["epoch"]] + [
                    f"{statistics.fmean(x[k] for x in st):.3f}"
                    for k in ("alpha", "beta", "p_same", "p_diff")] + [
                    f"{statistics.fmean(x['degree'] for x in st):.1f}"])
        text += ["\nAGFN sampler over training (mean over seeds; P over 256 test images)",
                 markdown_table(header, rows)]
    text.append(probe_tables(results, args, probes))
    return "\n".join(text)


def probe_tables(results: dict, args: argparse.Namespace, probes) -> str:
    """The frozen-feature probe: accuracy of every probe, Δ against the graph-off head (AGFN
    probes evaluated with the identity graph, the default; the other graphs beside), and the
    AGFN probes' final sampler."""
    seeds = range(args.seeds)
    header, cells = ["noise", "probe off"], []
    for probe in probes:
        if probe == "off":
            continue
        key = f"probe_{probe}_identity" if probe in AGFN_PROBES else f"probe_{probe}"
        name = f"{probe} (identity)" if probe in AGFN_PROBES else probe
        header += [name, "Δ", "95 % CI"]
        cells.append((key, probe in AGFN_PROBES, probe))
        if probe in AGFN_PROBES:
            header += [f"{probe} (bank)", f"{probe} (expected)"]
    rows = []
    for n in args.noise:
        rs = [results[(n, s)] for s in seeds]
        off = [r["probe_off"] for r in rs]
        row = [f"{100 * n:.0f}%", mean_std(off)]
        for key, is_agfn, probe in cells:
            accs = [r[key] for r in rs]
            row += paired_cells(accs, off)
            if is_agfn:
                row += [mean_std([r[f"probe_{probe}_{g}"] for r in rs]) for g in ("bank",
                                                                                   "expected")]
        rows.append(row)
    text = [f"\nFrozen-feature probe: the head alone trained {args.probe_epochs} epochs on the "
            f"epoch-{args.warmup} features (test accuracy %; Δ paired by seed against 'off')",
            markdown_table(header, rows)]
    sampler = [p for p in probes if p in AGFN_PROBES
               and all(f"probe_{p}_p_same" in results[(n, s)] for n in args.noise for s in seeds)]
    if sampler:
        header = ["noise", "probe", "γ2", "α", "β", "P same class", "P different class",
                  "degree"]
        rows = []
        for n in args.noise:
            for p in sampler:
                rs = [results[(n, s)] for s in seeds]
                rows.append([f"{100 * n:.0f}%", p, f"{probe_graph_lr(p, args):g}"] + [
                    f"{statistics.fmean(r[f'probe_{p}_{k}'] for r in rs):.3f}"
                    for k in ("alpha", "beta", "p_same", "p_diff")] + [
                    f"{statistics.fmean(r[f'probe_{p}_degree'] for r in rs):.1f}"])
        init = inspect.signature(AGFN).parameters
        text += [f"\nProbe sampler after training (mean over seeds; P over {STATS_IMAGES} test "
                 f"features; initial α {init['alpha'].default}, β {init['beta'].default})",
                 markdown_table(header, rows)]
    return "\n".join(text)


def versus(results: dict, args: argparse.Namespace, path: str | Path) -> str:
    """Every branch and the graph-off probe against the same noise rate, seed and branch in
    another results file (e.g. the same runs without ``--trunk-weights``): Δ = here − there,
    paired by seed."""
    other = {(r["noise"], r["seed"]): r for r in read_results(path, "--versus")["runs"]}
    seeds = range(args.seeds)
    keys = [b for b in BRANCHES if args.extra and (b == "off" or b in args.branches)]
    keys.append("probe_off")
    header = ["noise"] + [c for k in keys for c in (f"{k} here", "there", "Δ", "95 % CI")]
    rows = []
    for n in args.noise:
        if any((n, s) not in other for s in seeds):
            rows.append([f"{100 * n:.0f}%"] + ["not recorded there"] + ["-"] * (len(header) - 2))
            continue
        row = [f"{100 * n:.0f}%"]
        for k in keys:
            here = [results[(n, s)][k] for s in seeds]
            there = [other[(n, s)][k] for s in seeds]
            cells = paired_cells(here, there)
            row += [cells[0], mean_std(there), *cells[1:]]
        rows.append(row)
    return (f"\nAgainst the same noise rate, seed and branch in {path}; Δ = here − there, "
            "paired by seed (points)\n" + markdown_table(header, rows))


# ----------------------------------------------------------------------------- main


SAME_RUN = ("img_size", "samples", "test_samples", "min_intensity", "batch_size", "lr",
            "graph_lr", "warmup", "extra", "threads", "probe_epochs", "average_last",
            "trunk_weights", "probes", "probe_fast_factor")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warmup", type=int, default=12, help="graph-off epochs before insertion")
    ap.add_argument("--extra", type=int, default=6, help="epochs of every branch after it")
    ap.add_argument("--branches", nargs="+", default=["agfn", "gcn"], choices=["agfn", "gcn"])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4])
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--samples", type=int, default=1000, help="training images")
    ap.add_argument("--test-samples", type=int, default=500)
    ap.add_argument("--min-intensity", type=float, default=0.6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eval-batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3, help="network learning rate γ1 (Adam)")
    ap.add_argument("--graph-lr", type=float, default=1e-3, help="α, β learning rate γ2 (SGD)")
    ap.add_argument("--probe-epochs", type=int, default=20)
    ap.add_argument("--probes", nargs="+", default=RECORDED_DEFAULTS["probes"], choices=PROBES,
                    help="heads trained on the frozen epoch-W features ('off' always runs)")
    ap.add_argument("--probe-fast-factor", type=float,
                    default=RECORDED_DEFAULTS["probe_fast_factor"],
                    help="agfn_fast probe: α, β learning rate = this × --graph-lr")
    ap.add_argument("--average-last", type=int, default=3,
                    help="a branch's figure: mean test accuracy of its last N epochs")
    ap.add_argument("--trunk-weights", default=None,
                    help="initialise the warm-up's ResNet-18 trunk from this file (e.g. the "
                         "synthetic_identity_pretrain recipe's best.safetensors)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="toy size for CI")
    ap.add_argument("--out", default=None, help="run folders here (default: a temp dir)")
    ap.add_argument("--keep-runs", action="store_true", help="keep the run folders")
    ap.add_argument("--json", default=None, help="write every pair's results here")
    ap.add_argument("--reuse", default=None, help="take recorded pairs from an earlier --json")
    ap.add_argument("--versus", default=None,
                    help="a --json file with other settings (e.g. without --trunk-weights): "
                         "also print each branch's Δ against the same noise and seed in it")
    args = ap.parse_args(argv)
    if args.quick:
        args.img_size, args.samples, args.test_samples = 32, 64, 32
        args.warmup, args.extra, args.probe_epochs, args.batch_size = 1, 1, 1, 16
        args.average_last = 1
    if args.extra:
        args.average_last = min(args.average_last, args.extra)
    if args.warmup < 1:
        ap.error("--warmup must be >= 1")
    args.probes = ["off"] + [p for p in dict.fromkeys(args.probes) if p != "off"]

    t_all = time.perf_counter()
    keys = [(n, s) for n in args.noise for s in range(args.seeds)]
    results: dict = {}
    if args.reuse:
        earlier = read_results(args.reuse, "--reuse")
        diff = settings_diff({**RECORDED_DEFAULTS, **earlier["args"]}, args, SAME_RUN)
        if diff:
            raise SystemExit(f"--reuse {args.reuse}: other settings (recorded, now): {diff}")
        results = {(r["noise"], r["seed"]): r for r in earlier["runs"]
                   if (r["noise"], r["seed"]) in set(keys)}
    todo = [k for k in keys if k not in results]
    train_ds = render("train", args.samples, args.img_size, flip=True,
                      min_intensity=args.min_intensity)
    test_ds = render("test", args.test_samples, args.img_size, min_intensity=args.min_intensity)
    print(f"{len(todo)} noise/seed pairs to run ({len(results)} reused): warm-up {args.warmup} "
          f"+ {args.extra} epochs, {args.samples}/{args.test_samples} images at "
          f"{args.img_size}px, batch {args.batch_size}; {args.jobs} jobs × {args.threads} "
          "threads", flush=True)

    def record(key, r) -> None:
        results[key] = r
        _report(key, r)
        if args.json:
            write_json(args.json, {"args": vars(args), "runs": list(results.values())})

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        run_keys(todo, _run_key, args.jobs, _init_worker, (train_ds, test_ds, args, str(out)),
                 record)
    print()
    print(tables(results, args))
    if args.versus:
        print(versus(results, args, args.versus))
    print(f"\n{len(todo)} pairs run in {time.perf_counter() - t_all:.0f} s")
    return results


if __name__ == "__main__":
    main()
