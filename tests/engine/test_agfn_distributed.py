"""AGFN's graph over the global batch under DDP (issue 18): gloo, 2 CPU processes."""

import torch
from _agfn_dist import (batches, coordinate_descent, forward_backward, global_graph_worker,
                        train_worker)
from _engine_tiny import TinyAGFNLayer

from pyg_fer.engine.distributed import launch

TOL = dict(rtol=1e-5, atol=1e-5)


def _rank_results(tmp_path):
    launch(global_graph_worker, nproc=2, args=(str(tmp_path),))
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_global_graph_on_two_processes_equals_one_process_on_the_global_batch(tmp_path):
    ranks = _rank_results(tmp_path)
    images, targets = batches()[0]

    # ---- global graph: 2 × 4 samples == 1 process × 8 samples, same draw
    torch.manual_seed(0)
    ref = forward_backward(TinyAGFNLayer().train(), images, targets, seed=100)
    on = [r[True] for r in ranks]
    assert on[0]["draws"].shape == (2, 8, 8)  # S = 2 graphs over all 8 samples
    assert torch.equal(on[0]["draws"], ref["draws"]) and torch.equal(on[1]["draws"],
                                                                        ref["draws"])
    # each rank returns its own 4 samples' outputs, in rank order
    torch.testing.assert_close(torch.cat([on[0]["out"], on[1]["out"]], dim=1), ref["out"], **TOL)
    assert set(ref["grads"]) == {"fc1.weight", "fc1.bias", "agfn.graph.alpha",
                                 "agfn.graph.beta", "agfn.gcn.bias", "agfn.gcn.lin.weight",
                                 "fc2.weight", "fc2.bias"}
    for name, grad in ref["grads"].items():  # DDP-averaged gradients == the one-process ones
        torch.testing.assert_close(on[0]["grads"][name], grad, **TOL, msg=name)
        torch.testing.assert_close(on[1]["grads"][name], grad, **TOL, msg=name)
    # the bank holds the last 6 of the 8 global samples' features on both ranks
    assert on[0]["bank_count"] == on[1]["bank_count"] == 6
    torch.testing.assert_close(on[0]["bank"], ref["bank"], **TOL)
    assert torch.equal(on[0]["bank"], on[1]["bank"])

    # ---- option off: each process its own graph over its 4 samples, as before issue 18
    off = [r[False] for r in ranks]
    local = []
    for r in range(2):
        torch.manual_seed(0)
        rows = slice(4 * r, 4 * r + 4)
        local.append(forward_backward(TinyAGFNLayer().train(), images[rows], targets[rows],
                                      seed=100 + r))
        assert off[r]["draws"].shape == (2, 4, 4)
        assert torch.equal(off[r]["draws"], local[r]["draws"])
        torch.testing.assert_close(off[r]["out"], local[r]["out"], **TOL)
        torch.testing.assert_close(off[r]["bank"], local[r]["bank"], **TOL)  # own samples
    for name in ref["grads"]:
        mean = (local[0]["grads"][name] + local[1]["grads"][name]) / 2
        torch.testing.assert_close(off[0]["grads"][name], mean, **TOL, msg=name)
    assert not torch.allclose(off[0]["out"], on[0]["out"], atol=1e-3)

    # ---- coordinate descent: α, β, the bank and every parameter agree across ranks and
    # with one process stepping on the global batches
    torch.manual_seed(0)
    single = coordinate_descent(TinyAGFNLayer().train(), batches(), slice(0, 8), seed=200)
    init = TinyAGFNLayer()
    assert float(single["agfn.graph.alpha"]) != float(init.agfn.graph.alpha.detach())  # α moved
    for name, value in single.items():
        assert torch.equal(ranks[0]["steps"][name], ranks[1]["steps"][name]), name
        torch.testing.assert_close(ranks[0]["steps"][name], value, **TOL, msg=name)
    # graph_step="shared": α, β step from DDP's averaged gradient of the network step
    torch.manual_seed(0)
    shared = coordinate_descent(TinyAGFNLayer().train(), batches(), slice(0, 8), seed=300,
                                graph_step="shared")
    assert float(shared["agfn.graph.beta"]) != float(init.agfn.graph.beta.detach())
    for name, value in shared.items():
        assert torch.equal(ranks[0]["steps_shared"][name], ranks[1]["steps_shared"][name]), name
        torch.testing.assert_close(ranks[0]["steps_shared"][name], value, **TOL, msg=name)


def test_engine_global_graph_keeps_alpha_beta_and_bank_identical_across_ranks(tmp_path):
    launch(train_worker, nproc=2, args=(str(tmp_path),))
    for global_graph in (True, False):
        r0, r1 = (torch.load(tmp_path / f"train_global_{global_graph}_rank{r}.pt",
                             weights_only=False) for r in range(2))
        assert len(r0) == len(r1) == 2  # epochs
        for e0, e1 in zip(r0, r1, strict=True):
            assert e0["global_graph"] is e1["global_graph"] is global_graph  # recipe key
            assert torch.equal(e0["alpha"], e1["alpha"]) and torch.equal(e0["beta"], e1["beta"])
            # per process (option off) each rank's bank ends the epoch with its own batches;
            # the evaluation before on_epoch_end runs on rank 0's, the checkpoint's
            assert torch.equal(e0["bank"], e1["bank"])
        assert float(r0[-1]["alpha"]) != 1.4  # the graph step ran
