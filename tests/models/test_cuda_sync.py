"""On CUDA, a forward pass never waits for the GPU: no value is read back to the host."""

import pytest
import torch

import pyg_fer

SMALL = dict(embed_dim=64, depth=2, grid_size=4, k=4)
MODELS = {"face2nodes": SMALL, "face2nodes_mr": SMALL, "agfn_resnet18": {"feature_dim": 32}}


@pytest.mark.cuda
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name", list(MODELS))
def test_forward_has_no_host_synchronisation(name, train):
    model = pyg_fer.create_model(name, **MODELS[name]).cuda().train(train)
    x = torch.randn(4, 3, 64, 64, device="cuda")
    model(x)  # warm-up: cuDNN/cuBLAS handles and autotuning may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.shape == (4, 7)
