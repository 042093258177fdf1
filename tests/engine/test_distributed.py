import json

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
