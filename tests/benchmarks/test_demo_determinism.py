"""benchmarks/demo_determinism.py: its options (a --help that trains nothing) and its hash."""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import demo_determinism  # noqa: E402


def test_help_and_bad_options_train_nothing(capsys, monkeypatch):
    monkeypatch.setattr(demo_determinism, "train_hash", lambda *a: pytest.fail("trained"))
    with pytest.raises(SystemExit) as err:
        demo_determinism.main(["--help"])
    assert err.value.code == 0 and "--steps" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        demo_determinism.main(["--steps", "0"])
    assert err.value.code == 2 and "--steps must be >= 1" in capsys.readouterr().err


def test_hashes_are_reported_for_each_run(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(demo_determinism, "train_hash",
                        lambda threads, steps: calls.append((threads, steps)) or f"{threads:064x}")
    demo_determinism.main(["--steps", "2"])
    assert calls == [(1, 2), (1, 2), (2, 2)]
    out = capsys.readouterr().out
    assert "same thread count, identical: True; 1 vs 2 threads, identical: False" in out
