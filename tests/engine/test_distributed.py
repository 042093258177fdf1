import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _engine_tiny import ddp_worker

from pyg_fer.engine.distributed import ShardSampler, launch


_PARAMS = ["fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias"]


def test_shard_sampler_covers_every_index_once():
    shards = [list(ShardSampler(10, r, 3)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(10))
    assert [len(s) for s in shards] == [4, 3, 3]


def test_two_process_gloo_training(tmp_path):
    epochs = 2
    launch(ddp_worker, nproc=2, args=(str(tmp_path), epochs))
    # parameters identical across ranks after steps (BatchNorm running statistics are per rank
    # between DDP's buffer broadcasts; the checkpoint holds rank 0's)
    for epoch in range(1, epochs + 1):
        r0 = torch.load(tmp_path / f"rank0_epoch{epoch}.pt", weights_only=True)
        r1 = torch.load(tmp_path / f"rank1_epoch{epoch}.pt", weights_only=True)
        assert r0.keys() == r1.keys() == set(_PARAMS)
        for k in r0:
            assert torch.equal(r0[k], r1[k]), (epoch, k)
    first = torch.load(tmp_path / "rank0_epoch1.pt", weights_only=True)
    last = torch.load(tmp_path / f"rank0_epoch{epochs}.pt", weights_only=True)
    assert not torch.equal(first["fc1.weight"], last["fc1.weight"])  # it did train
    # checkpoints written by rank 0 only, once per epoch (plus best when it improved)
    saves0 = (tmp_path / "rank0_saves.txt").read_text().split()
    assert saves0.count("last") == epochs and 1 <= saves0.count("best") <= epochs
    assert (tmp_path / "rank1_saves.txt").read_text() == ""
    run = tmp_path / "run"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(1, epochs + 1))
    # metrics are reduced over ranks: both ranks saw the same epoch losses
    assert (tmp_path / "rank0_losses.txt").read_text() == \
        (tmp_path / "rank1_losses.txt").read_text()
    report = json.loads((run / "report.json").read_text())
    assert report["num_samples"] == 40  # eval shards summed: every test image once
    # the per-epoch evaluation ran with rank 0's BatchNorm statistics on every shard: the
    # report of best.json (rank 0, from disk) reproduces the best epoch's line
    best = json.loads((run / "best.json").read_text())
    record = next(json.loads(x) for x in lines if json.loads(x)["epoch"] == best["epoch"])
    final = json.loads((tmp_path / "rank0_best.json").read_text())
    assert final["loss"] == pytest.approx(record["eval_loss"], rel=1e-6)
    assert final["overall_acc"] == pytest.approx(record["eval_acc"])
    # the reduced train metrics count every training sample (96 = 2 ranks x 6 steps x 8)
    assert json.loads(lines[0])["img_per_s"] > 0


def _launcher(tmp_path, body: str, module: str = "_engine_tiny") -> subprocess.Popen:
    """``launch(<body>, 2)`` in a process of its own, as the command line runs it (SIGTERM
    turned into SystemExit); a launcher that hangs then fails the test instead of the suite."""
    here = Path(__file__).resolve().parent
    code = (f"from {module} import {body}\n"
            "from pyg_fer._signals import sigterm_as_exit\n"
            "from pyg_fer.engine.distributed import launch\n"
            "with sigterm_as_exit():\n"
            f"    launch({body}, 2, args=({str(tmp_path)!r},))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here), str(here.parents[1])]),
               OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and whatever it started (processes hung in a collective ignore
    the SIGINT they get when their parent dies)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_failing_rank_stops_the_job_and_the_run_folder_is_released(tmp_path):
    # the failing rank used to wait at the clean-up barrier while rank 0 waited inside the
    # training step's all-reduce: the job hung until gloo's 30-minute timeout
    proc = _launcher(tmp_path, "failing_rank_worker")
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        _kill_group(proc)
    assert proc.returncode == 1, err[-2000:]
    # the root cause is printed whichever failed process launch re-raises (rank 0's all-reduce
    # fails too once rank 1 is gone, and may be the one reported)
    assert "[pyg-fer] process of rank 1 of 2 failed:" in err
    assert "RuntimeError: rank 1 met a bad image" in err
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and not (run / ".pyg-fer.lock").exists()
    assert not (run / "metrics.jsonl").exists()  # no epoch finished


def test_sigterm_to_the_launcher_stops_its_processes_after_their_cleanup(tmp_path):
    # `kill PID` of `pyg-fer train --nproc 2` used to end only the launcher's own command: it
    # then waited for its processes, which trained on to the last epoch
    proc = _launcher(tmp_path, "sleeper_worker", "_launch_bodies")
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("rank*.pid"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        pids = [int((tmp_path / f"rank{r}.pid").read_text()) for r in (0, 1)]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        _kill_group(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert sorted(p.name for p in tmp_path.glob("rank*.cleaned")) == ["rank0.cleaned",
                                                                       "rank1.cleaned"]
    for pid in pids:  # joined by the launcher before it exited
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_stop_kills_a_process_that_ignores_sigterm():
    from _launch_bodies import ignore_sigterm_and_wait

    from pyg_fer.engine.distributed import _stop

    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=ignore_sigterm_and_wait, args=(ready,))
    proc.start()
    assert ready.wait(60)
    t0 = time.monotonic()
    _stop([proc], grace=1.0)
    assert not proc.is_alive() and proc.exitcode == -signal.SIGKILL
    assert 1.0 <= time.monotonic() - t0 < 30


class _Stuck:
    """A process that ignores SIGTERM; the first ``join`` is cut short by a second Ctrl-C."""

    def __init__(self) -> None:
        self.alive, self.joins = True, 0

    def is_alive(self) -> bool:
        return self.alive

    def terminate(self) -> None:
        pass

    def kill(self) -> None:
        self.alive = False

    def join(self, timeout=None) -> None:
        self.joins += 1
        if self.joins == 1:
            raise KeyboardInterrupt


def test_a_second_ctrl_c_during_the_grace_kills_at_once():
    from pyg_fer.engine.distributed import _stop

    procs = [_Stuck(), _Stuck()]
    with pytest.raises(KeyboardInterrupt):
        _stop(procs, grace=30.0)
    assert not any(p.alive for p in procs)  # used to be left running, the launcher waiting
