"""benchmarks/agfn_regime.py at its --quick size, and benchmarks/plots.py on its results."""

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
from torch_geometric.nn import GCNConv

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import agfn_regime  # noqa: E402
import plots  # noqa: E402

from pyg_fer.engine.checkpoint import read_card  # noqa: E402
from pyg_fer.models.card import read_weights  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One noise level, one seed, warm-up 1 + 1 epoch, run folders kept."""
    tmp = tmp_path_factory.mktemp("regime")
    out_json = tmp / "regime.json"
    torch_threads = agfn_regime.torch.get_num_threads()
    try:
        results = agfn_regime.main(["--quick", "--noise", "0.4", "--seeds", "1", "--jobs", "1",
                                    "--keep-runs", "--out", str(tmp / "runs"),
                                    "--json", str(out_json), "--probes", *agfn_regime.PROBES])
    finally:
        agfn_regime.torch.set_num_threads(torch_threads)
    return tmp, out_json, results


def test_quick_run_records_curves_stats_and_probe(quick):
    _, out_json, results = quick
    r = results[(0.4, 0)]
    warmup, extra = 1, 1
    assert [e for e, _, _ in r["curves"]["off"]] == list(range(1, warmup + extra + 1))
    for branch in ("agfn", "gcn"):  # the branches start after the snapshot
        assert [e for e, _, _ in r["curves"][branch]] == list(range(warmup + 1,
                                                                    warmup + extra + 1))
        assert r[branch] == r["curves"][branch][-1][1]  # --quick averages the last 1 epoch
    assert r["at_insertion"] == r["curves"]["off"][warmup - 1][1]
    (stats,) = r["agfn_stats"]
    assert stats["epoch"] == warmup + 1
    assert math.isfinite(stats["alpha"]) and math.isfinite(stats["beta"])
    assert 0.0 <= stats["p_same"] <= 1.0 and 0.0 <= stats["p_diff"] <= 1.0
    for key in ("probe_off", "probe_gcn", "probe_agfn_bank", "probe_agfn_expected",
                "probe_agfn_identity", "agfn_bank", "agfn_expected", "agfn_identity",
                "probe_oracle", "probe_agfn_fast_identity", "probe_agfn_p_same",
                "probe_agfn_fast_p_diff"):
        assert 0.0 <= r[key] <= 1.0, key
    # The fast sampler takes 1000× the paper's step on the same gradients: α moves further.
    assert abs(r["probe_agfn_fast_alpha"] - 1.4) > abs(r["probe_agfn_alpha"] - 1.4)
    recorded = json.loads(out_json.read_text())
    assert recorded["args"]["warmup"] == 1 and len(recorded["runs"]) == 1


def test_branch_resumed_from_snapshot_continues_the_warm_up_exactly(quick):
    """Resuming the copied epoch-W folder with the warm-up's own recipe reproduces the
    warm-up's later epochs to the last digit: the branches start from exactly the state the
    baseline had when the graph is inserted (weights, optimiser, RNG, data order, noise)."""
    tmp, _, results = quick
    args = agfn_regime.argparse.Namespace(**json.loads((tmp / "regime.json").read_text())["args"])
    snap = tmp / "runs" / "snap_n40_s0"
    again = tmp / "again" / "off_n40_s0"
    shutil.copytree(snap, again)
    train_ds = agfn_regime.render("train", args.samples, args.img_size, flip=True,
                                  min_intensity=args.min_intensity)
    test_ds = agfn_regime.render("test", args.test_samples, args.img_size,
                                 min_intensity=args.min_intensity)
    accs = []
    agfn_regime.train_quietly(agfn_regime.run_config(args, 0.4, 0, again, "off"),
                              train_dataset=train_ds, eval_dataset=test_ds, resume=again,
                              on_epoch_end=lambda e, m, rec: accs.append(rec["eval_acc"]))
    assert accs == [acc for _, acc, _ in results[(0.4, 0)]["curves"]["off"][args.warmup:]]


def test_baseline_gcn_conversion_keeps_every_shared_tensor(quick):
    tmp, _, _ = quick
    snap = read_weights(read_card(tmp / "runs" / "snap_n40_s0" / "last.json"))
    dst = tmp / "conv"
    shutil.copytree(tmp / "runs" / "snap_n40_s0", dst)
    agfn_regime._to_baseline_gcn(tmp / "runs" / "snap_n40_s0", dst)
    meta = read_card(dst / "last.json")
    assert meta["model"]["name"] == "baseline_gcn_resnet18" and meta["epoch"] == 1
    conv = read_weights(meta)
    assert set(conv) == set(snap) - {"graph_norm.bank", "graph_norm.bank_ptr",
                                     "graph_norm.bank_count", "graph_norm.graph.alpha",
                                     "graph_norm.graph.beta"}
    assert all((conv[k] == snap[k]).all() for k in conv)


def test_tables_and_plots_from_the_results(quick, tmp_path):
    _, out_json, results = quick
    args = agfn_regime.argparse.Namespace(**json.loads(out_json.read_text())["args"])
    text = agfn_regime.tables(results, args)
    assert "| 40% |" in text and "Frozen-feature probe" in text and "P same class" in text
    assert "oracle" in text and "Probe sampler after training" in text and "| 1 |" in text
    plots.main(["--out", str(tmp_path), "--agfn", str(out_json)])
    for name in ("regime_noise.png", "regime_curves.png", "regime_sampler.png",
                 "regime_probes.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_efficiency_plot_reads_ablation_files(tmp_path):
    files = []
    for frac, accs in ((0.1, (0.3, 0.32)), (1.0, (0.45, 0.47))):
        f = tmp_path / f"abl{frac}.json"
        f.write_text(json.dumps({"args": {"train_fraction": frac}, "runs": [
            {"arm": "full", "seed": s, "acc": a} for s, a in enumerate(accs)]}))
        files.append(str(f))
    plots.main(["--out", str(tmp_path / "img"), "--efficiency", *files,
                "--efficiency-arms", "full"])
    assert (tmp_path / "img" / "data_efficiency.png").stat().st_size > 1000


def test_refuses_reuse_with_other_settings(quick, tmp_path):
    _, out_json, _ = quick
    with pytest.raises(SystemExit, match="other settings"):
        agfn_regime.main(["--quick", "--noise", "0.4", "--seeds", "1", "--jobs", "1",
                          "--lr", "0.5", "--reuse", str(out_json), "--out", str(tmp_path)])


def test_oracle_graph_links_the_same_clean_label_in_training_only():
    """Training: a GCN over same-label pairs (self loops added, symmetric normalisation);
    evaluation: no edges. Exact values for labels (0, 0, 1)."""
    torch = agfn_regime.torch
    gcn = GCNConv(2, 2)
    oracle = agfn_regime._OracleGraphGCN(gcn).train()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    xw = x @ gcn.lin.weight.t()
    with pytest.raises(RuntimeError, match="clean labels"):
        oracle(x)
    oracle.labels = torch.tensor([0, 0, 1])
    expected = torch.stack([(xw[0] + xw[1]) / 2, (xw[0] + xw[1]) / 2, xw[2]]) + gcn.bias
    assert torch.allclose(oracle(x), expected, atol=1e-6)
    assert torch.allclose(oracle.eval()(x), xw + gcn.bias, atol=1e-6)


def test_versus_pairs_branches_with_another_file(quick, tmp_path):
    _, out_json, results = quick
    args = agfn_regime.argparse.Namespace(**json.loads(out_json.read_text())["args"])
    r = results[(0.4, 0)]
    other = tmp_path / "other.json"
    shifted = {k: (r[k] - 0.25 if k in ("off", "agfn", "gcn", "probe_off") else r[k]) for k in r}
    other.write_text(json.dumps({"args": {}, "runs": [shifted]}))
    text = agfn_regime.versus(results, args, other)
    row = [line for line in text.splitlines() if line.startswith("| 40% |")][0].split(" | ")
    assert row.count("+25.0 ± nan") == 4  # off, agfn, gcn and the graph-off probe
    other.write_text(json.dumps({"args": {}, "runs": []}))
    assert "not recorded there" in agfn_regime.versus(results, args, other)
