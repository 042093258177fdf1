"""benchmarks/noisy_labels.py: its --json record and the --versus pairing across invocations
(on made-up runs: exact deltas), and the settings check that guards the pairing."""

import argparse
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import noisy_labels  # noqa: E402

SETTINGS = dict(img_size=32, samples=48, test_samples=16, min_intensity=0.6, epochs=2,
                batch_size=16, optim="adam", lr=1e-3, pretrain_epochs=1, threads=1,
                device="auto")


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{**SETTINGS, "seeds": 2, "noise": [0.0, 0.2],
                                 "agfn_kwargs": {}, **kw})


def _results(arm: str, accs: dict) -> dict:
    return {(arm, n, s): {"acc": a} for (n, s), a in accs.items()}


def test_versus_pairs_every_arm_here_with_every_arm_there_by_noise_and_seed(tmp_path):
    there = {**_results("resnet18_fer", {(0.0, 0): 0.30, (0.0, 1): 0.40, (0.2, 0): 0.20}),
             **_results("agfn_resnet18", {(0.0, 0): 0.25, (0.0, 1): 0.25, (0.2, 0): 0.10,
                                          (0.2, 1): 0.10})}
    path = tmp_path / "paper.json"
    path.write_text(json.dumps({"args": {**SETTINGS, "arms": ["resnet18_fer", "agfn_resnet18"],
                                         "agfn_kwargs": {}},
                                "runs": noisy_labels._runs(there)}))
    args = _args(arms=["agfn_resnet18"], agfn_kwargs={"straight_through": "prob"})
    here = _results("agfn_resnet18", {(0.0, 0): 0.35, (0.0, 1): 0.45, (0.2, 0): 0.10,
                                      (0.2, 1): 0.30})
    text = noisy_labels.versus(here, args, str(path), noisy_labels.read_versus(str(path), args))
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert rows[0] == ("| noise | agfn_resnet18 − there resnet18_fer | "
                       "agfn_resnet18 − there agfn_resnet18 |")
    # 0 %: differences (+5, +5) vs ResNet-18, (+10, +20) vs AGFN; 20 %: seed 1 of the
    # baseline is missing there, the AGFN differences are (0, +20).
    assert rows[2] == "| 0% | +5.0 ± 0.0 | +15.0 ± 7.1 |"
    assert rows[3] == "| 20% | not recorded there | +10.0 ± 14.1 |"
    assert "there: --agfn-kwargs {}" in text


def test_versus_refuses_a_file_with_other_data_or_training(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"args": {**SETTINGS, "epochs": 8}, "runs": []}))
    with pytest.raises(ValueError, match=r"--versus .*other settings.*'epochs': \(8, 2\)"):
        noisy_labels.read_versus(str(path), _args(arms=["agfn_resnet18"]))
    # From the command line it is a usage error before any image is rendered.
    with pytest.raises(SystemExit) as err:
        noisy_labels.main(["--versus", str(path)])
    assert err.value.code == 2
