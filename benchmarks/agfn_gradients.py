"""How much the paper's AGFN gradients (issue 10) differ from the previous estimator.

On ``agfn_resnet18`` (random initialisation, train mode) and SyntheticFER batches, one
forward/backward per batch with the same graph draw under both estimators:

- paper (default): ``straight_through="rate"``, ``edge_grad_to_features=False`` —
  ``∂A/∂λ = 1`` averaged over the ``N²`` pairs (Eq. 11, 14), the draw fixed for the features
  (Eq. 10);
- previous: ``straight_through="prob"``, ``edge_grad_to_features=True`` — ``∂A/∂P = 1``
  summed over the pairs, gradient through ``P`` into the features.

Printed per batch size: the medians over batches of ``|∂L/∂α|``, ``|∂L/∂β|`` under each
estimator and their ratio (previous / paper), and the share of the backbone's gradient
(trunk + projection) that the previous estimator sent through the edge weights,
``‖g_previous − g_paper‖ / ‖g_previous‖``.

Usage: ``python benchmarks/agfn_gradients.py [--batch-sizes 16 64] [--batches 5]
[--img-size 32] [--threads 2]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fer_tensors import render  # noqa: E402
from _timing import format_table  # noqa: E402

import pyg_fer  # noqa: E402

ESTIMATORS = {
    "paper": dict(straight_through="rate", edge_grad_to_features=False),
    "previous": dict(straight_through="prob", edge_grad_to_features=True),
}


def gradients(model, images, targets, seed):
    """``(∂L/∂α, ∂L/∂β, flat backbone gradient)`` of the cross-entropy, draw seeded."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    F.cross_entropy(model(images), targets).backward()
    graph = model.graph_norm.graph
    backbone = [p.grad.flatten() for m in (model.trunk, model.project)
                for p in m.parameters() if p.grad is not None]
    return float(graph.alpha.grad), float(graph.beta.grad), torch.cat(backbone)


def _ratio(num: list, den: list) -> float:
    """Median over batches of the per-batch ratio."""
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = render("train", max(args.batch_sizes) * args.batches, args.img_size, seed=0)
    images = torch.stack([data[i][0] for i in range(len(data))])
    targets = torch.tensor(data.targets)
    torch.manual_seed(0)
    models = {name: pyg_fer.create_model("agfn_resnet18", **kw).train()
              for name, kw in ESTIMATORS.items()}
    models["previous"].load_state_dict(models["paper"].state_dict())
    rows = []
    for b in args.batch_sizes:
        stats = {key: [] for key in ("a_paper", "a_prev", "b_paper", "b_prev", "share")}
        for k in range(args.batches):
            x, y = images[k * b:(k + 1) * b], targets[k * b:(k + 1) * b]
            a0, b0, g0 = gradients(models["paper"], x, y, seed=k)
            a1, b1, g1 = gradients(models["previous"], x, y, seed=k)
            stats["a_paper"].append(abs(a0))
            stats["a_prev"].append(abs(a1))
            stats["b_paper"].append(abs(b0))
            stats["b_prev"].append(abs(b1))
            stats["share"].append(float((g1 - g0).norm() / g1.norm()))
        med = {key: statistics.median(v) for key, v in stats.items()}
        rows.append([b, f"{med['a_paper']:.3g}", f"{med['a_prev']:.3g}",
                     f"{_ratio(stats['a_prev'], stats['a_paper']):.0f}", f"{med['b_paper']:.3g}",
                     f"{med['b_prev']:.3g}", f"{_ratio(stats['b_prev'], stats['b_paper']):.0f}",
                     f"{100 * med['share']:.1f} %"])
    print(f"agfn_resnet18, SyntheticFER {args.img_size} px, cross-entropy, {args.batches} batches "
          "per size, medians")
    print(format_table(["B", "abs dL/dα paper", "abs dL/dα previous", "ratio",
                        "abs dL/dβ paper", "abs dL/dβ previous", "ratio",
                        "edge path share of backbone grad"], rows))


if __name__ == "__main__":
    main()
