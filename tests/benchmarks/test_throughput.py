"""benchmarks/throughput.py and benchmarks/profile_model.py at toy sizes on the CPU: the
settings grid, the ratios (exact on made-up times), the JSON records, the per-part profile."""

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import profile_model  # noqa: E402
import throughput  # noqa: E402
from throughput import BASELINE, Setting  # noqa: E402

TINY = ["--img-size", "32", "--batch-size", "2", "--threads", "1",
        "--model-kwargs", json.dumps({"grid_size": 4, "embed_dim": 32, "depth": 2, "k": 3})]


def test_settings_grid_puts_eager_first_and_keeps_the_order_given():
    grid = throughput.settings_grid(["bf16", "fp16"], ["contiguous", "channels_last"],
                                    ["reduce-overhead"])
    assert len(grid) == 8
    assert grid[0] == Setting("bf16", "contiguous", "eager")  # the x ref column's reference
    assert [s.compile for s in grid] == ["eager"] * 4 + ["reduce-overhead"] * 4
    assert grid[1] == Setting("bf16", "channels_last", "eager")
    assert grid[4].cudagraphs and not grid[0].cudagraphs


class _Bench:
    def __init__(self, settings):
        self.settings = settings


def test_ratios_are_medians_of_per_round_ratios():
    eager = Setting("bf16", "contiguous")
    compiled = Setting("bf16", "contiguous", "reduce-overhead")
    times = {
        (BASELINE, eager, "infer"): [1.0, 1.0, 1.0],
        (BASELINE, compiled, "infer"): [0.5, 0.5, 0.5],
        ("face2nodes", eager, "infer"): [2.0, 4.0, 5.0],
        ("face2nodes", compiled, "infer"): [1.0, 1.0, 2.0],
    }
    memory = {key: 100.0 for key in times}
    records = throughput.summarise(_Bench([eager, compiled]), times, memory, batch_size=64)
    rec = {(r["model"], r["compile"]): r for r in records}
    f_eager, f_comp = rec["face2nodes", "eager"], rec["face2nodes", "reduce-overhead"]
    assert f_eager["x_baseline"] == pytest.approx(0.25)  # median of 1/2, 1/4, 1/5
    assert f_eager["img_per_s"] == pytest.approx(16.0) and f_eager["x_eager"] is None
    assert f_comp["x_baseline"] == pytest.approx(0.5)  # against the compiled baseline
    # per round 2/1, 4/1, 5/2: median 2.5 (not the ratio of the medians, 4)
    assert f_comp["x_eager"] == pytest.approx(2.5) and f_comp["x_ref"] == pytest.approx(2.5)
    assert rec[BASELINE, "eager"]["x_baseline"] == 1.0
    text = throughput.render(records, [eager, compiled], ["infer"])
    row = next(line for line in text.splitlines() if "face2nodes" in line and "reduce" in line)
    assert "graph pool" in row and "2.50" in row  # CUDA-graph memory is not a step's peak
    assert "100" in next(line for line in text.splitlines()
                         if "face2nodes" in line and "eager" in line)


def test_main_times_every_model_and_setting_and_writes_json(tmp_path):
    out = tmp_path / "tp.json"
    records = throughput.main(["--models", "face2nodes", "--repeats", "2", "--warmup", "0",
                               "--only", "infer", "--memory-format", "contiguous",
                               "channels_last", "--json", str(out), *TINY])
    assert {(r["model"], r["memory_format"]) for r in records} == {
        (m, f) for m in (BASELINE, "face2nodes") for f in ("contiguous", "channels_last")}
    assert all(len(r["seconds"]) == 2 and r["peak_mib"] is None and r["mode"] == "infer"
               for r in records)
    saved = json.loads(out.read_text())
    assert saved["settings"][0] == {"amp": "none", "memory_format": "contiguous",
                                    "compile": "eager"}
    assert len(saved["records"]) == 4


def test_profile_counts_operators_per_block(tmp_path):
    out = tmp_path / "prof.json"
    summary = profile_model.main(["--model", "face2nodes", "--steps", "2", "--warmup", "1",
                                  "--json", str(out), *TINY])
    assert list(summary["parts"]) == ["embed", "blocks.0", "blocks.1", "head"]
    block = summary["parts"]["blocks.0"]
    # 63: tests/nn/test_block.py::test_block_forward_dispatches_few_operators says why
    assert block["calls"] == 1 and 0 < block["ops"] <= 63 and block["launches"] is None
    assert summary["total_ops"] >= sum(p["ops"] for p in summary["parts"].values())
    assert summary["top_ops"][0]["self_ms"] >= summary["top_ops"][-1]["self_ms"]
    assert json.loads(out.read_text())["parts"]["head"]["ops"] == summary["parts"]["head"]["ops"]


def test_profile_of_a_training_step_covers_the_backward():
    infer = profile_model.main(["--model", "face2nodes", "--steps", "1", "--warmup", "1", *TINY])
    train = profile_model.main(["--model", "face2nodes", "--steps", "1", "--warmup", "1",
                                "--mode", "train", *TINY])
    assert train["total_ops"] > 2 * infer["total_ops"]
    assert any(r["op"].endswith("_backward") for r in train["top_ops"])


def test_interrupted_rounds_keep_the_whole_rounds():
    from _timing import RoundsInterrupted, interleaved_seconds

    calls = {"n": 0}

    def second():
        calls["n"] += 1
        if calls["n"] == 3:  # round 3 (no warm-up), after a has run in it
            raise KeyboardInterrupt

    with pytest.raises(RoundsInterrupted) as stop:
        interleaved_seconds({"a": lambda: None, "b": second}, repeats=4, warmup=0)
    assert {k: len(t) for k, t in stop.value.times.items()} == {"a": 2, "b": 2}
    def stop():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as first:  # no whole round: nothing to report
        interleaved_seconds({"a": lambda: None, "b": stop}, repeats=2, warmup=0)
    assert not isinstance(first.value, RoundsInterrupted)


def test_a_capped_run_reports_the_modes_it_finished(monkeypatch, capsys, tmp_path):
    def interrupted(self, key):
        raise KeyboardInterrupt

    monkeypatch.setattr(throughput.Bench, "train", interrupted)
    out = tmp_path / "tp.json"
    records = throughput.main(["--models", "face2nodes", "--repeats", "1", "--warmup", "0",
                               "--json", str(out), *TINY])
    assert {r["mode"] for r in records} == {"infer"} and len(records) == 2
    assert "interrupted before a whole train round" in capsys.readouterr().out
    assert json.loads(out.read_text())["interrupted"].endswith("train round")


@pytest.mark.parametrize("script", ["throughput", "profile_model", "graph_ops", "inference"])
def test_device_flag_is_a_usage_error_when_the_device_is_missing(script, capsys, monkeypatch):
    """``--device cuda`` without CUDA, or a device that does not parse, stops every speed script
    with argparse's usage error naming the device, before any model is built."""
    module = importlib.import_module(script)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, message in (("cuda", "'cuda' .* needs CUDA, which is not available"),
                            ("gpu", "'gpu' .* is not a device")):
        monkeypatch.setattr(sys, "argv", [f"{script}.py", "--device", device])
        with pytest.raises(SystemExit) as err:
            module.main()
        assert err.value.code == 2
        assert re.search(message, capsys.readouterr().err)


def test_inference_benchmark_removes_its_work_folder_even_when_a_run_fails(monkeypatch):
    """The photos and checkpoints ``inference.py`` writes live in a temporary folder that is
    gone after the run, whether it ends normally or with an error."""
    inference = importlib.import_module("inference")
    seen = []

    def run(args, device, work, fail):
        (work / "best.safetensors").write_bytes(b"x")
        seen.append(work)
        if fail:
            raise RuntimeError("detector found no face")

    monkeypatch.setattr(sys, "argv", ["inference.py", "--device", "cpu", "--threads", "1"])
    monkeypatch.setattr(inference, "_run", lambda *a: run(*a, fail=False))
    inference.main()
    monkeypatch.setattr(inference, "_run", lambda *a: run(*a, fail=True))
    with pytest.raises(RuntimeError, match="no face"):
        inference.main()
    assert len(seen) == 2 and not any(w.exists() for w in seen)
