import pytest
import torch
from _engine_tiny import BlobImages, tiny_config

from pyg_fer.engine import load_model, train


@pytest.mark.cuda
@pytest.mark.parametrize("amp_dtype, compile_mode", [
    ("float16", None), ("bfloat16", None), ("bfloat16", "reduce-overhead")])
def test_amp_channels_last_training_on_cuda(tmp_path, amp_dtype, compile_mode):
    torch._dynamo.reset()
    tr, ev = BlobImages(256, seed=1), BlobImages(64, seed=2)
    cfg = tiny_config(tmp_path, train={"epochs": 3, "device": "cuda", "amp": True,
                                       "amp_dtype": amp_dtype, "compile": compile_mode,
                                       "channels_last": True, "grad_clip": 1.0})
    seen = {}

    def check(epoch, model, record):
        seen[epoch] = (next(model.parameters()).device.type, record["train_loss"])

    result = train(cfg, train_dataset=tr, eval_dataset=ev, on_epoch_end=check)
    assert all(dev == "cuda" for dev, _ in seen.values())
    assert seen[3][1] < seen[1][1]
    assert result["best"]["overall_acc"] > 0.5
    # a checkpoint written from CUDA loads on the CPU and predicts the same classes
    cpu = load_model(tmp_path / "run", device="cpu")
    gpu = load_model(tmp_path / "run", device="cuda")
    with torch.no_grad():
        a = cpu(ev.images).argmax(1)
        b = gpu(ev.images.cuda()).argmax(1).cpu()
    assert (a == b).float().mean() > 0.95
