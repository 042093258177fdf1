"""How much does an AGFN model's test accuracy depend on the test batch? (issue 6, §2)

Trains one small ``agfn_resnet18`` on SyntheticFER through the training engine (AGFN
coordinate-descent mode), then evaluates the same weights with every evaluation graph of
:class:`pyg_fer.nn.AGFN`:

- ``expected``: the expected graph over the test batch (A = P), the paper's public-code setting;
- ``identity``: no graph at test time;
- ``bank``: the graph between each test sample and a bank of the last M training features.

for test batch sizes 1, 16, 256 and two batch compositions: ``shuffled`` (a fixed random
order) and ``sorted`` (the test set ordered by class, so a batch is mostly one class). Prints
the accuracy table, the spread (max − min) per graph, and the fraction of test images whose
predicted class differs from the prediction with batch size 1 (single-image inference).

Default size (CPU, one thread, about 6 minutes): 32×32 px, 1 000 training / 512 test images
with expression intensity ≥ 0.6, batch 16 (bank of 15 features), 6 epochs with AGFN inserted
after 3. ``--device cuda --img-size 112 --samples 10000 --min-intensity 0.15 --epochs 40
--pretrain-epochs 10 --batch-size 256`` scales it up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fer_tensors import render  # noqa: E402

from pyg_fer.engine import train  # noqa: E402

EVAL_GRAPHS = ("expected", "identity", "bank")
BATCH_SIZES = (1, 16, 256)
COMPOSITIONS = ("shuffled", "sorted")


@torch.no_grad()
def predict(model, dataset, order: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """Predicted class of every test image (indexed by image, whatever the order)."""
    model.eval()
    loader = DataLoader(Subset(dataset, order.tolist()), batch_size=batch_size, shuffle=False)
    preds = torch.empty(len(dataset), dtype=torch.long)
    pos = 0
    for images, _ in loader:
        p = model(images.to(device)).argmax(1).cpu()
        preds[order[pos:pos + len(p)]] = p
        pos += len(p)
    return preds


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--test-samples", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--loss", default="ce", choices=["ce", "mse"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-intensity", type=float, default=0.6,
                    help="SyntheticFER's lowest expression intensity (higher: an easier task)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    t_all = time.perf_counter()
    train_ds = render("train", args.samples, args.img_size, flip=True,
                      min_intensity=args.min_intensity)
    test_ds = render("test", args.test_samples, args.img_size,
                     min_intensity=args.min_intensity)
    holder: dict = {}

    def keep(epoch, model, record):
        if epoch == args.epochs:
            holder["model"] = model

    cfg = {
        "model": {"name": "agfn_resnet18",
                  "kwargs": {"bank_size": args.batch_size - 1, "eval_graph": "bank"}},
        "data": {"name": "synthetic", "img_size": args.img_size},
        "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4},
        "schedule": {"name": "cosine"},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                  "label_smoothing": 0.0, "device": args.device, "progress": False,
                  "num_threads": args.threads, "eval_every": args.epochs},
        "agfn": {"enabled": True, "graph_lr": 1e-3, "loss": args.loss,
                 "pretrain_epochs": args.pretrain_epochs},
        "output": {"name": "agfn_batch_dependence", "overwrite": True},
    }
    with tempfile.TemporaryDirectory() as tmp:
        cfg["output"]["dir"] = tmp
        train(cfg, train_dataset=train_ds, eval_dataset=test_ds, on_epoch_end=keep)
    model = holder["model"]
    norm = model.graph_norm
    device = next(model.parameters()).device
    t_train = time.perf_counter() - t_all
    print(f"trained agfn_resnet18 ({args.epochs} epochs, {args.samples} images at "
          f"{args.img_size}px) in {t_train:.0f} s; α={norm.graph.alpha.item():.3f} "
          f"β={norm.graph.beta.item():.3f}; bank {int(norm.bank_count)}/{norm.bank_size}")

    targets = torch.tensor(test_ds.targets)
    gen = torch.Generator().manual_seed(args.seed)
    orders = {"shuffled": torch.randperm(len(test_ds), generator=gen),
              "sorted": torch.sort(targets, stable=True).indices}
    settings = [(bs, comp) for comp in COMPOSITIONS for bs in BATCH_SIZES]
    header = ["eval_graph"] + [f"bs={bs} {comp}" for bs, comp in settings] + [
        "spread", "changed vs bs=1"]
    rows = []
    for g in EVAL_GRAPHS:
        norm.eval_graph = g
        preds = {s: predict(model, test_ds, orders[s[1]], s[0], device) for s in settings}
        accs = [float((preds[s] == targets).float().mean()) for s in settings]
        single = preds[(1, "shuffled")]
        changed = max(float((preds[s] != single).float().mean()) for s in settings)
        rows.append([g] + [f"{100 * a:.1f}" for a in accs]
                    + [f"{100 * (max(accs) - min(accs)):.1f}", f"{100 * changed:.1f}%"])
    print(f"\nTest accuracy (%) of one trained agfn_resnet18 ({len(test_ds)} test images) by "
          "evaluation graph, test batch size and batch composition; 'changed' = the largest "
          "fraction of images whose predicted class differs from single-image (bs=1) "
          "inference")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\ntotal wall time {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
