"""AGFN's batch graph as a thumbnail: which samples of a mini-batch were linked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pyg_fer.explain._plot import new_figure, save_figure

__all__ = ["batch_graph", "draw_batch_graph"]


@torch.no_grad()
def batch_graph(model: nn.Module, images: Tensor, *, sample: bool = True,
                seed: int | None = 0) -> tuple[Tensor, Tensor | None]:
    """The graph an AGFN model builds over the mini-batch ``images`` ``[B, C, H, W]``.

    The features are extracted in eval mode (BatchNorm on running statistics; nothing is
    updated), then the model's batch graph is built on them: for
    :class:`~pyg_fer.nn.AGFN` the Poisson graph — with ``sample`` one Bernoulli draw of
    every pair (training's graph, under ``seed`` without touching the global RNG; ``None``:
    the global RNG), else the pairs with non-zero expected weight — and for
    :class:`~pyg_fer.nn.agfn.CosineThresholdGCN` its fixed-threshold graph.

    Returns ``(edge_index, prob)``: the linked pairs ``[2, E]`` (row 0 source ``j``, row 1
    target ``i``; self-loops excluded) and the ``[B, B]`` edge probabilities of the Poisson
    graph (``None`` for the threshold graph).
    """
    from pyg_fer.nn.agfn import AGFN, CosineThresholdGCN

    norm = getattr(model, "graph_norm", None)
    if norm is None or not hasattr(model, "extract"):
        raise TypeError(f"{type(model).__name__} is not an AGFN model (no graph_norm/extract)")
    if images.dim() != 4 or images.size(0) < 2:
        raise ValueError(f"images must be a batch [B >= 2, C, H, W], got {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    try:
        feats = model.extract(images)
    finally:
        model.train(was_training)
    if isinstance(norm, AGFN):
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            graph = norm.graph(feats, sample=sample)
        return graph.edge_index[:, graph.edge_weight > 0], graph.prob
    if isinstance(norm, CosineThresholdGCN):
        edge_index = norm.edge_index(feats)
        return edge_index[:, edge_index[0] != edge_index[1]], None
    raise TypeError(f"unknown batch graph module {type(norm).__name__}")


def draw_batch_graph(
    edge_index: Tensor,
    labels: Sequence[int] | Tensor,
    path: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    size: int = 320,
    dpi: int = 100,
) -> Path:
    """A ``size × size`` PNG thumbnail of a batch graph: samples on a circle, grouped and
    coloured by label (a legend names the classes present), linked pairs as lines (an edge
    drawn once per unordered pair; edges within a class in its colour, across classes grey)."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    labels = torch.as_tensor(labels).long().flatten()
    b = labels.numel()
    if edge_index.numel():
        low, high = int(edge_index.min()), int(edge_index.max())
        if low < 0 or high >= b:  # a negative id would wrap round to the last samples
            raise ValueError(f"edge_index refers to node {low if low < 0 else high}, but the "
                             f"{b} labels given number nodes 0..{b - 1}")
    order = torch.argsort(labels * b + torch.arange(b))  # grouped by label, stable
    slot = torch.empty(b, dtype=torch.long)
    slot[order] = torch.arange(b)
    angle = 2 * math.pi * slot.double() / b
    pos = torch.stack([torch.cos(angle), torch.sin(angle)], 1).numpy()
    palette = colormaps["tab10"]
    colours = np.array([palette(int(c) % 10) for c in labels.tolist()])
    pairs = sorted({(min(j, i), max(j, i)) for j, i in edge_index.t().tolist()})
    fig = new_figure(size, size, dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    if pairs:
        segs = np.stack([[pos[a], pos[c]] for a, c in pairs])
        same = [labels[a] == labels[c] for a, c in pairs]
        lc = [colours[a] if s else (0.6, 0.6, 0.6, 1.0) for (a, _), s in zip(pairs, same,
                                                                              strict=True)]
        ax.add_collection(LineCollection(segs, colors=lc, linewidths=0.8, alpha=0.6))
    ax.scatter(pos[:, 0], pos[:, 1], s=max(8.0, 2400.0 / b), c=colours, edgecolors="black",
               linewidths=0.4, zorder=3)
    for c in sorted(set(labels.tolist())):
        name = class_names[c] if class_names is not None else str(c)
        ax.scatter([], [], c=[palette(c % 10)], s=20, label=name)
    ax.legend(loc="center", fontsize=6, frameon=False, handletextpad=0.2, labelspacing=0.2)
    ax.text(0, -1.15, f"{b} samples, {len(pairs)} linked pairs", ha="center", fontsize=7)
    ax.set_xlim(-1.25, 1.25)
    ax.set_ylim(-1.25, 1.25)
    ax.set_aspect("equal")
    ax.axis("off")
    return save_figure(fig, path)
