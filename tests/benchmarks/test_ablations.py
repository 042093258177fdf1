"""benchmarks/ablations.py at its --quick size, and the shared helpers of benchmarks/_seeded.py."""

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import ablations  # noqa: E402
from _seeded import markdown_table, mean_std, paired_ci, paired_delta  # noqa: E402
from _seeded import invocations, read_results, run_keys, settings_diff, write_json  # noqa: E402


def test_mean_std_and_paired_delta_exact():
    assert mean_std([0.5, 0.7]) == f"60.0 ± {100 * math.sqrt(0.02):.1f}"  # stdev of 0.5, 0.7
    assert mean_std([0.25]) == "25.0 ± nan"
    # Paired: the differences are (+0.1, +0.1), so the std is 0 although the arms vary a lot.
    assert paired_delta([0.3, 0.9], [0.2, 0.8]) == "+10.0 ± 0.0"
    assert paired_delta([0.1, 0.2], [0.3, 0.3]) == "-15.0 ± 7.1"
    with pytest.raises(ValueError, match="2 values but 1 baseline"):
        paired_delta([0.1, 0.2], [0.3])
    with pytest.raises(ValueError, match="no values"):
        mean_std([])


def test_markdown_table_checks_row_width():
    assert markdown_table(["a", "b"], [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"
    with pytest.raises(ValueError, match="3 cells, header 2"):
        markdown_table(["a", "b"], [[1, 2, 3]])


def _square(key):
    return {"sq": key * key}


def test_run_keys_in_process_calls_back_every_key():
    seen = []
    out = run_keys([1, 2, 3], _square, jobs=1, on_result=lambda k, r: seen.append(k))
    assert out == {1: {"sq": 1}, 2: {"sq": 4}, 3: {"sq": 9}}
    assert seen == [1, 2, 3]


def test_model_spec_resolves_arms_at_the_demo_size():
    args = ablations.argparse.Namespace(img_size=48, f2n_base=dict(ablations.F2N_BASE))
    assert ablations.model_spec("full", args) == (
        "face2nodes", {"img_size": 48, "grid_size": 4, "embed_dim": 128, "depth": 4})
    assert ablations.model_spec("mr", args)[0] == "face2nodes_mr"
    assert ablations.model_spec("edge", args)[1]["conv"] == "edge"
    assert ablations.model_spec("no_dilation", args)[1]["dilations"] == [1, 1, 1, 1]
    assert ablations.model_spec("k4_dilated", args)[1]["dilations"] == [1, 1, 2, 2]
    assert ablations.model_spec("resnet18_fer", args) == ("resnet18_fer", {"img_size": 48})
    with pytest.raises(ValueError, match="unknown arm 'nope'"):
        ablations.model_spec("nope", args)
    args.trunk_weights = "pre.safetensors"
    assert ablations.model_spec("full", args)[1]["weights"] == "pre.safetensors"
    assert ablations.model_spec("resnet18_fer", args)[1]["weights"] == "pre.safetensors"
    with pytest.raises(ValueError, match="'stem' .* no ResNet-18 trunk"):
        ablations.model_spec("stem", args)


def test_quick_run_table(tmp_path, capsys, one_thread):
    """Two arms, one seed, toy size: the table has one row per arm, accuracies in [0, 100],
    the reference's Δ is 0 and the other's Δ is exactly its accuracy minus the reference's;
    ``ARM@E`` trains that arm for E epochs."""
    out_json = tmp_path / "abl.json"
    summary = ablations.main(["--quick", "--seeds", "1", "--jobs", "1", "--arms", "full",
                              "stem@2", "--cache-dir", str(tmp_path / "cache"), "--json",
                              str(out_json), "--out", str(tmp_path / "runs")])
    printed = capsys.readouterr().out
    header, rows = summary["header"], summary["rows"]
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2 and table[0] == "| " + " | ".join(header) + " |"
    assert [r[0] for r in rows] == ["full", "stem@2"]
    assert [r[1] for r in rows] == ["face2nodes", "face2nodes_stem"]
    assert [r[header.index("epochs")] for r in rows] == [1, 2]  # --quick: 1 epoch
    runs = {r["arm"]: r for r in summary["runs"]}
    assert set(runs) == {"full", "stem@2"}
    for arm, row in zip(["full", "stem@2"], rows, strict=True):
        acc = runs[arm]["acc"]
        assert 0.0 <= acc <= 1.0 and runs[arm]["time_s"] > 0
        assert row[header.index("test acc % (mean ± std)")] == f"{100 * acc:.1f} ± nan"
        assert float(row[header.index("params (M)")]) > 0
    delta_col = header.index("Δ vs ref (points)")
    assert rows[0][delta_col] == "0 (reference)"
    expected = 100 * (runs["stem@2"]["acc"] - runs["full"]["acc"])
    assert rows[1][delta_col] == f"{expected:+.1f} ± nan"
    assert rows[1][header.index("ref")] == "full"
    assert rows[1][header.index("95 % CI of Δ")] == "-"  # one seed: no interval
    # The run folders are kept with --out (the stem run trained 2 epochs), and the JSON holds
    # the same table.
    card = json.loads((tmp_path / "runs" / "stem_ep2_s0" / "last.json").read_text())
    assert card["epoch"] == 2
    assert json.loads(out_json.read_text())["rows"] == rows
    # --reuse takes the recorded runs instead of training again (same figures, no run line) ...
    # Rewriting the reused file keeps the wall time of the invocation that trained its runs.
    again = ablations.main(["--quick", "--seeds", "1", "--jobs", "1", "--arms", "stem@2", "full",
                            "--cache-dir", str(tmp_path / "cache"), "--reuse", str(out_json),
                            "--json", str(out_json)])
    assert "reusing 2 runs" in capsys.readouterr().out
    assert [r[0] for r in again["rows"]] == ["stem@2", "full"]
    assert {r["arm"]: r["acc"] for r in again["runs"]} == {a: r["acc"] for a, r in runs.items()}
    history = json.loads(out_json.read_text())["invocations"]
    assert [h["computed"] for h in history] == [2, 0]
    assert history[0]["total_s"] == round(summary["total_s"], 1)
    assert history[1]["total_s"] == round(again["total_s"], 1)
    # --versus pairs every arm with the same arm and seed of another file (exact Δ) ...
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"args": {"train_fraction": 0.5}, "runs": [
        {"arm": "full", "seed": 0, "acc": runs["full"]["acc"] - 0.125}]}))
    vs = ablations.main(["--quick", "--seeds", "1", "--jobs", "1", "--arms", "full", "stem@2",
                         "--cache-dir", str(tmp_path / "cache"), "--reuse", str(out_json),
                         "--versus", str(other)])["versus"]
    assert "train_fraction 0.5" in vs["title"] and "Against the same arm" in capsys.readouterr().out
    assert vs["rows"][0][3] == "+12.5 ± nan"
    assert vs["rows"][1][:3] == ["stem@2", f"{100 * runs['stem@2']['acc']:.1f} ± nan",
                                 "seeds [0] not recorded"]
    other.write_text("[]")
    with pytest.raises(ValueError, match="--versus .*not a results file"):
        ablations.main(["--quick", "--seeds", "1", "--jobs", "1", "--arms", "full",
                        "--cache-dir", str(tmp_path / "cache"), "--reuse", str(out_json),
                        "--versus", str(other)])
    # ... and --reuse refuses a file recorded with other settings.
    with pytest.raises(ValueError, match="recorded with other settings.*train_fraction"):
        ablations.main(["--quick", "--train-fraction", "0.5", "--seeds", "1", "--jobs", "1",
                        "--arms", "full", "--cache-dir", str(tmp_path / "cache"), "--reuse",
                        str(out_json)])


def test_arm_with_its_own_epochs():
    args = ablations.argparse.Namespace(img_size=48, f2n_base=dict(ablations.F2N_BASE),
                                        epochs=8, samples=3000, test_samples=1000,
                                        batch_size=64, train_fraction=1.0, threads=1,
                                        device="cpu", cache_dir="c")
    assert ablations.split_arm("resnet18_fer@12") == ("resnet18_fer", 12)
    assert ablations.split_arm("full") == ("full", None)
    assert ablations.model_spec("resnet18_fer@12", args) == ablations.model_spec(
        "resnet18_fer", args)
    cfg = ablations.run_config("resnet18_fer@12", args, 1, "out")
    assert cfg["train"]["epochs"] == 12 and cfg["train"]["eval_every"] == 12
    assert cfg["output"]["name"] == "resnet18_fer_ep12_s1"
    assert ablations.run_config("full", args, 1, "out")["train"]["epochs"] == 8
    for bad, match in (("nope@3", "unknown arm 'nope'"), ("full@0", "positive integer"),
                       ("full@x", "positive integer")):
        with pytest.raises(ValueError, match=match):
            ablations.split_arm(bad)
    with pytest.raises(SystemExit):  # argparse refuses it before anything runs
        ablations.main(["--arms", "full@-1"])


def test_paired_ci_exact():
    # Differences 0.1, 0.2, 0.3: mean 0.2, std 0.1, t(0.975, 2) = 4.303 -> 0.2 ± 0.2484.
    assert paired_ci([0.3, 0.5, 0.7], [0.2, 0.3, 0.4]) == "[-4.8, +44.8]"
    assert paired_ci([0.3], [0.2]) == "-"
    with pytest.raises(ValueError, match="3 values but 2"):
        paired_ci([0.1, 0.2, 0.3], [0.1, 0.2])


def test_write_json_keeps_the_previous_file_when_a_write_fails(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"runs": [1]})
    with pytest.raises(TypeError):
        write_json(path, {"runs": [object()]})  # not serialisable: nothing replaces the file
    assert json.loads(path.read_text()) == {"runs": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_read_results_names_the_flag_and_file(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"args": {"a": 1}, "runs": [], "invocations": []}))
    assert read_results(good, "--reuse")["args"] == {"a": 1}
    for name, text in (("list.json", "[]"), ("norun.json", '{"args": {}}'),
                       ("bad.json", "{"), ("absent.json", None)):
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"--versus .*{name}: not a results file"):
            read_results(tmp_path / name, "--versus")


def test_settings_diff_and_invocation_history():
    args = SimpleNamespace(a=1, b=2, c=None)
    assert settings_diff({"a": 1, "b": 3}, args, ["a", "b", "c"]) == {"b": (3, 2)}
    assert settings_diff({"a": 1, "b": 2, "c": 0}, args, ["a", "c"]) == {"c": (0, None)}
    assert invocations(None, 4, 12.34) == [{"computed": 4, "total_s": 12.3}]
    first = {"invocations": [{"computed": 4, "total_s": 12.3}]}
    assert invocations(first, 0, 0.5) == [{"computed": 4, "total_s": 12.3},
                                          {"computed": 0, "total_s": 0.5}]
    assert invocations({"runs": []}, 1, 2.0) == [{"computed": 1, "total_s": 2.0}]  # old file
