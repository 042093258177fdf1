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

from pyg_fer.engine import distributed as D
from pyg_fer.engine.distributed import DistInfo, ShardSampler, launch


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
    turned into SystemExit), with an empty temporary folder (``tmp_path/tmp``) to show what it
    leaves there; a launcher that hangs then fails the test instead of the suite."""
    here = Path(__file__).resolve().parent
    code = (f"from {module} import {body}\n"
            "from pyg_fer._signals import sigterm_as_exit\n"
            "from pyg_fer.engine.distributed import launch\n"
            "with sigterm_as_exit():\n"
            f"    launch({body}, 2, args=({str(tmp_path)!r},))\n")
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here), str(here.parents[1])]),
               OMP_NUM_THREADS="1", TMPDIR=str(tmp_path / "tmp"))
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
    # torch's per-process traceback files are removed (they used to pile up in /tmp)
    assert not list((tmp_path / "tmp").glob("pytorch-errorfile-*"))
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
    ready, terminated = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=ignore_sigterm_and_wait, args=(ready, terminated))
    proc.start()
    assert ready.wait(60)
    _stop([proc], grace=1.0)
    # asked first (SIGTERM, which it survived), killed only then
    assert terminated.is_set()
    assert not proc.is_alive() and proc.exitcode == -signal.SIGKILL


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


def test_one_process_needs_no_process_group(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = D.init_distributed()
    assert info == DistInfo() and not info.enabled and info.is_main and not info.owns_group
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc-per-node 1
    assert D.init_distributed() == DistInfo()
    # every helper is a no-op without a group (torch.distributed would raise)
    t = torch.ones(2)
    assert D.all_reduce_sum(t, info) is t and torch.equal(t, torch.ones(2))
    assert D.broadcast_object({"a": 1}, info) == {"a": 1}
    D.barrier(info)
    D.broadcast_buffers(torch.nn.BatchNorm1d(2), info)
    D.cleanup(info)
    assert DistInfo(rank=0, world_size=2).enabled and not DistInfo(rank=1, world_size=2).is_main


def test_init_distributed_joins_the_group_torchruns_environment_describes(monkeypatch):
    calls = []
    monkeypatch.setattr(D.dist, "init_process_group", lambda **kw: calls.append(kw))
    monkeypatch.setattr(D.torch.cuda, "set_device", lambda i: calls.append(("cuda", i)))
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.delenv("LOCAL_RANK", raising=False)  # one node: the local rank is the rank
    assert D.init_distributed() == DistInfo(3, 4, 3, owns_group=True)
    assert calls == [dict(backend="gloo", init_method="env://", rank=3, world_size=4)]
    calls.clear()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert D.init_distributed("auto", "cuda") == DistInfo(3, 4, 1, owns_group=True)
    assert calls == [("cuda", 1), dict(backend="nccl", init_method="env://", rank=3,
                                       world_size=4)]


def test_a_group_made_by_someone_else_is_joined_not_owned_and_not_destroyed(monkeypatch):
    calls = []
    monkeypatch.setattr(D.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(D.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(D.dist, "get_world_size", lambda: 2)
    for name in ("init_process_group", "barrier", "destroy_process_group"):
        monkeypatch.setattr(D.dist, name, lambda *a, name=name, **kw: calls.append(name))
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = D.init_distributed("gloo", "cpu")
    assert info == D.current() == DistInfo(1, 2, 1, owns_group=False) and calls == []
    D.cleanup(info)
    assert calls == []  # the caller's group stays up
    D.cleanup(DistInfo(1, 2, 1, owns_group=True))
    assert calls == ["barrier", "destroy_process_group"]
    calls.clear()
    D.cleanup(DistInfo(1, 2, 1, owns_group=True), wait=False)  # a failed rank: no barrier
    assert calls == ["destroy_process_group"]


def test_launch_refuses_no_processes_and_gives_each_process_torchruns_variables(monkeypatch):
    with pytest.raises(ValueError, match="nproc must be >= 1, got 0"):
        launch(print, nproc=0)
    names = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    for name in names:
        monkeypatch.setenv(name, "-")  # restored after the test
    seen = []
    D._worker(2, 3, 29512, lambda *args: seen.append(({n: os.environ[n] for n in names}, args)),
              ("a", 1))
    assert seen == [({"RANK": "2", "LOCAL_RANK": "2", "WORLD_SIZE": "3", "LOCAL_WORLD_SIZE": "3",
                      "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29512"}, ("a", 1))]
