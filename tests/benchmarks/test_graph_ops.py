"""benchmarks/graph_ops.py at toy sizes on the CPU."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import graph_ops  # noqa: E402


def test_dense_ops_profiles_the_dense_backend_per_size_and_dilation(capsys):
    """``--dense-ops`` prints, for every size and dilation, the dense k-NN backend's operators by
    self time per call: the score ``baddbmm`` and the ``topk`` are among them."""
    assert graph_ops.main(["--batch", "2", "--dim", "8", "--k", "3", "--sizes", "12", "20",
                           "--repeats", "2", "--device", "cpu", "--skip-knn", "--skip-conv",
                           "--dense-ops"]) == 0
    out = capsys.readouterr().out
    titles = [line for line in out.splitlines() if line.startswith("## Dense k-NN operators")]
    assert [t.split(", ")[2::3] for t in titles] == [
        ["N=12", "d=1 (2 calls)"], ["N=12", "d=2 (2 calls)"],
        ["N=20", "d=1 (2 calls)"], ["N=20", "d=2 (2 calls)"]]
    for section in out.split("## Dense k-NN operators")[1:]:
        assert "| aten::baddbmm" in section and "| aten::topk" in section
