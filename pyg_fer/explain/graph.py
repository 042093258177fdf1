"""The face graph of the RDGCN blocks drawn on the face: each block's k-NN edges, coloured by
the RG-Conv gate of the edge (or the feature distance for MR-/Edge-Conv blocks), widths by the
Grad-CAM importance of the nodes, and one node's neighbourhood from block 1 to block L."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyg_fer.explain._plot import as_display, new_figure, node_centres, save_figure
from pyg_fer.explain.gradcam import grad_cam, target_layer
from pyg_fer.nn.conv import RGConv
from pyg_fer.nn.knn import neighbours_to_edge_index

__all__ = [
    "BlockGraph",
    "block_graphs",
    "rg_edge_gates",
    "face_graph_edges",
    "draw_face_graph",
    "draw_neighbourhoods",
]


@dataclass
class BlockGraph:
    """The graph one RDGCN block built for one image.

    Attributes:
        block: the 1-based block number.
        edge_index: ``[2, N k]``, row 0 the neighbour :math:`j`, row 1 the centre :math:`i`
            (the block's ``last_neighbours`` as PyG edges, grouped by centre).
        features: ``[N, D]`` the conv's input :math:`F_{in}(X^l)` (what the k-NN ranks).
        strength: ``[N k]`` one value per edge: the RG-Conv gate
            :math:`\\sigma(\\mathbf{W}_h(\\mathbf{y}_j - \\mathbf{y}_i) + b_h)` (``kind
            "gate"``, averaged over channels for the channel gate) or, for MR-/Edge-Conv blocks,
            the Euclidean distance :math:`\\lVert \\mathbf{y}_j - \\mathbf{y}_i \\rVert`
            (``kind "distance"``).
        kind: ``"gate"`` or ``"distance"``.
        dilation: the block's dilation rate.
    """

    block: int
    edge_index: Tensor
    features: Tensor
    strength: Tensor
    kind: str
    dilation: int


def rg_edge_gates(conv: RGConv, x: Tensor, edge_index: Tensor) -> Tensor:
    r"""The gate :math:`h(\mathbf{x}_j - \mathbf{x}_i) = \sigma(\mathbf{W}_h(\mathbf{x}_j -
    \mathbf{x}_i) + \mathbf{b}_h)` of each edge ``j → i`` of an :class:`~pyg_fer.nn.RGConv`:
    ``[E]`` for the scalar gate, ``[E, F]`` for the channel gate.

    The weight of edge ``j → i`` in the conv's aggregate :math:`\mathbf{g}_i = \sum_j h(\cdot)
    \odot (\mathbf{x}_j - \mathbf{x}_i)` (Face2Nodes Eq. 7), recomputed from the conv's own
    ``gate_lin`` on its input ``x`` ``[N, F]`` and ``edge_index`` (row 0 sources).
    """
    if not isinstance(conv, RGConv):
        raise TypeError(f"rg_edge_gates needs an RGConv, got {type(conv).__name__}")
    if x.dim() != 2 or x.size(1) != conv.in_channels:
        raise ValueError(f"x must be [N, {conv.in_channels}], got {tuple(x.shape)}")
    src, dst = edge_index
    gate = torch.sigmoid(conv.gate_lin(x[src] - x[dst]))
    return gate[:, 0] if conv.gate == "scalar" else gate


def _graph_layers(model: nn.Module) -> list[nn.Module]:
    layer, grid = target_layer(model, 1)
    if grid is None or not hasattr(layer, "last_neighbours"):
        raise TypeError(f"{type(model).__name__} has no RDGCN blocks to draw a face graph of")
    trunk = model.trunk if hasattr(model, "graph_norm") and hasattr(model, "trunk") else model
    return list(trunk.blocks)


def _one_image(image: Tensor) -> Tensor:
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.size(0) != 1:
        raise ValueError(f"image must be [C, H, W] or [1, C, H, W], got {tuple(image.shape)}")
    return image


@torch.no_grad()
def block_graphs(model: nn.Module, image: Tensor) -> list[BlockGraph]:
    """Every RDGCN block's graph for one image (``[C, H, W]`` or ``[1, C, H, W]``,
    normalised), from one forward pass in eval mode; block ``l`` is entry ``l - 1``."""
    image = _one_image(image)
    blocks = _graph_layers(model)
    inputs: dict[int, Tensor] = {}
    handles = [
        b.fc_in.register_forward_hook(
            lambda _m, _i, out, i=i: inputs.__setitem__(i, out.detach()[0]))
        for i, b in enumerate(blocks)
    ]
    was_training = model.training
    model.eval()
    try:
        model(image)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out = []
    for i, b in enumerate(blocks):
        y = inputs[i]
        edge_index = neighbours_to_edge_index(b.last_neighbours[0])
        src, dst = edge_index
        if isinstance(b.conv, RGConv):
            gate = rg_edge_gates(b.conv, y, edge_index)
            strength, kind = (gate if gate.dim() == 1 else gate.mean(1)), "gate"
        else:
            strength, kind = (y[src] - y[dst]).norm(dim=1), "distance"
        out.append(BlockGraph(i + 1, edge_index, y, strength, kind, int(b.dilation)))
    return out


def face_graph_edges(
    model: nn.Module, image: Tensor, block: int | None = None
) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """The k-NN edges of one RDGCN block for one image, with node positions.

    Returns ``(edges, centres, grid)``: ``edges`` ``[2, N k]`` (row 0 the neighbour, row 1 the
    centre node, as the block's ``last_neighbours``), ``centres`` ``[N, 2]`` the ``(x, y)`` pixel
    centre of each node's patch in the input image, and the patch grid ``(H, W)``.
    """
    image = _one_image(image)
    layer, grid = target_layer(model, block)
    if grid is None or not hasattr(layer, "last_neighbours"):
        raise TypeError(f"{type(model).__name__} has no RDGCN blocks to draw a face graph of")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(image)
    finally:
        model.train(was_training)
    edges = neighbours_to_edge_index(layer.last_neighbours[0])
    h, w = image.shape[-2:]
    return edges, node_centres(grid, h, w), grid


def _draw_edges(ax: Any, centres: Tensor, edges: Tensor, values: Tensor | None,
                widths: Tensor | None, vmin: float, vmax: float, cmap: str) -> Any:
    """Edges as line segments coloured by ``values`` (or yellow), widths per edge."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    segs = np.stack([centres[edges[1]].numpy(), centres[edges[0]].numpy()], axis=1)
    norm = Normalize(vmin, vmax)
    if values is None:
        colours = "yellow"
    else:
        colours = colormaps[cmap](norm(values.numpy()))
    lw = 0.9 if widths is None else widths.numpy()
    lines = LineCollection(segs, colors=colours, linewidths=lw, alpha=0.85)
    ax.add_collection(lines)
    return norm


def _colourbar(fig: Any, ax: Any, norm: Any, cmap: str, label: str) -> None:
    """A small colour bar in the lower-left corner, its labels white on a black outline."""
    from matplotlib import colormaps
    from matplotlib import patheffects as pe
    from matplotlib.cm import ScalarMappable

    outline = [pe.withStroke(linewidth=1.5, foreground="black")]
    cax = ax.inset_axes((0.05, 0.1, 0.42, 0.03))
    bar = fig.colorbar(ScalarMappable(norm, colormaps[cmap]), cax=cax, orientation="horizontal")
    bar.set_ticks([norm.vmin, norm.vmax], labels=[f"{norm.vmin:.2g}", f"{norm.vmax:.2g}"])
    bar.ax.tick_params(labelsize=6, colors="white", length=2, pad=1)
    for text in bar.ax.get_xticklabels():
        text.set_path_effects(outline)
    bar.ax.set_title(label, fontsize=6, color="white", pad=2, path_effects=outline)


def draw_face_graph(
    model: nn.Module,
    image: Tensor,
    display: Any,
    path: str | Path,
    block: int | None = None,
    nodes: list[int] | None = None,
    *,
    top: int | None = None,
    colour: bool = True,
    importance: bool = True,
    target: int | str | None = None,
    class_names: list[str] | None = None,
    cmap: str = "plasma",
    dpi: int = 100,
) -> tuple[Tensor, Path]:
    """Draw block ``block``'s face graph over ``display`` (``[H, W, 3]``, float in ``[0, 1]``
    or uint8; any size: node positions are scaled to it) as a PNG of ``H × W`` pixels.

    Each node sits at its patch centre; each edge ``j → i`` is drawn from the centre ``i`` to
    its neighbour ``j``. With ``colour``, edges are coloured by :attr:`BlockGraph.strength`
    (RG-Conv gate on a fixed ``[0, 1]`` scale, else the distance from its minimum to its
    maximum; a colour bar in the corner); with ``importance``, edge widths and node sizes
    follow the Grad-CAM weight of the centre node at that block (for ``target``, default the
    predicted class). ``nodes`` keeps the edges of those centres only; ``top`` those of the
    ``top`` most important centres. Returns the drawn edges ``[2, E]`` and the path.
    """
    image = _one_image(image)
    graphs = block_graphs(model, image)
    _, grid = target_layer(model, block)  # also checks that block is in range
    g = graphs[int(block or len(graphs)) - 1]
    disp = as_display(display)
    h, w = disp.shape[:2]
    centres = node_centres(grid, h, w)
    n = centres.size(0)
    weight = None
    if importance or top is not None:
        cam, _ = grad_cam(model, image, target, block=g.block, upsample=False,
                          class_names=class_names)
        weight = cam[0].flatten()
    keep = torch.ones(g.edge_index.size(1), dtype=torch.bool)
    if nodes is not None:
        keep &= torch.isin(g.edge_index[1], torch.as_tensor(nodes, dtype=torch.long))
    if top is not None:
        if not 1 <= int(top) <= n:
            raise ValueError(f"top={top} must lie in 1..{n} (the number of nodes)")
        keep &= torch.isin(g.edge_index[1], weight.topk(int(top)).indices)
    edges = g.edge_index[:, keep]
    values = g.strength[keep]
    fig = new_figure(w, h, dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(disp, extent=(0, w, h, 0))
    if g.kind == "gate":
        vmin, vmax = 0.0, 1.0
    else:
        vmin, vmax = float(g.strength.min()), float(g.strength.max())
    widths = None if not importance else 0.4 + 2.6 * weight[edges[1]]
    norm = _draw_edges(ax, centres, edges, values if colour else None, widths, vmin, vmax, cmap)
    sizes = 6.0 if not importance else 4.0 + 40.0 * weight.numpy()
    ax.scatter(centres[:, 0], centres[:, 1], s=sizes, c="red", edgecolors="white",
               linewidths=0.3, zorder=3)
    if colour and w >= 96:
        _colourbar(fig, ax, norm, cmap, "RG-Conv gate" if g.kind == "gate" else "distance")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")
    return edges, save_figure(fig, path)


def draw_neighbourhoods(
    model: nn.Module,
    image: Tensor,
    display: Any,
    path: str | Path,
    node: int | None = None,
    *,
    block: int | None = None,
    target: int | str | None = None,
    class_names: list[str] | None = None,
    panel: int = 160,
    cmap: str = "plasma",
    dpi: int = 100,
) -> tuple[int, list[Tensor], Path]:
    """Small multiples: node ``node``'s k neighbours in block 1, 2, …, L, side by side.

    ``L`` is ``block`` (1-based, default: the last block). One ``panel × panel`` square per
    block (``display`` resized into it), edges coloured as in :func:`draw_face_graph`, the
    node ringed; a 20-pixel title strip per panel gives the block and its dilation. The figure
    is ``L·panel × (panel + 20)`` pixels. ``node`` defaults to the most important node of
    block L by Grad-CAM (for ``target``). Returns the node, each block's neighbour ids of it,
    and the path.
    """
    from PIL import Image

    image = _one_image(image)
    _, grid = target_layer(model, block)  # checks `block` before the forward pass
    graphs = block_graphs(model, image)
    if block is not None:
        graphs = graphs[:int(block)]
    n = grid[0] * grid[1]
    if node is None:
        cam, _ = grad_cam(model, image, target, block=block, upsample=False,
                          class_names=class_names)
        node = int(cam[0].flatten().argmax())
    if not 0 <= int(node) < n:
        raise ValueError(f"node={node} is out of range: the face graph has nodes 0..{n - 1}")
    node = int(node)
    disp = np.asarray(Image.fromarray(as_display(display)).resize((panel, panel),
                                                                   Image.BICUBIC))
    centres = node_centres(grid, panel, panel)
    strip = 20
    num = len(graphs)
    fig = new_figure(num * panel, panel + strip, dpi)
    found = []
    for g in graphs:
        ax = fig.add_axes(((g.block - 1) / num, 0, 1 / num, panel / (panel + strip)))
        ax.imshow(disp, extent=(0, panel, panel, 0))
        keep = g.edge_index[1] == node
        edges = g.edge_index[:, keep]
        found.append(edges[0].clone())
        vmin, vmax = (0.0, 1.0) if g.kind == "gate" else (float(g.strength.min()),
                                                         float(g.strength.max()))
        _draw_edges(ax, centres, edges, g.strength[keep], torch.full((edges.size(1),), 2.0),
                    vmin, vmax, cmap)
        ax.scatter(centres[:, 0], centres[:, 1], s=4, c="white", zorder=3)
        ax.scatter(centres[edges[0], 0], centres[edges[0], 1], s=14, c="red", zorder=4)
        ax.scatter([centres[node, 0]], [centres[node, 1]], s=60, facecolors="none",
                   edgecolors="cyan", linewidths=1.5, zorder=5)
        ax.set_xlim(0, panel)
        ax.set_ylim(panel, 0)
        ax.axis("off")
        fig.text((g.block - 0.5) / num, 1 - 0.5 * strip / (panel + strip),
                 f"block {g.block} (d={g.dilation})", ha="center", va="center", fontsize=8)
    return node, found, save_figure(fig, path)
