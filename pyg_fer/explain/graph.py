"""The face graph of one RDGCN block drawn on the face."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from pyg_fer.explain.gradcam import target_layer

__all__ = ["face_graph_edges", "draw_face_graph"]


def face_graph_edges(
    model: nn.Module, image: Tensor, block: int | None = None
) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """The k-NN edges of one RDGCN block for one image, with node positions.

    Returns ``(edges, centres, grid)``: ``edges`` ``[2, N k]`` (row 0 the neighbour, row 1 the
    centre node, as the block's ``last_neighbours``), ``centres`` ``[N, 2]`` the ``(x, y)`` pixel
    centre of each node's patch, and the patch grid ``(H, W)``.
    """
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.size(0) != 1:
        raise ValueError(f"image must be [C, H, W] or [1, C, H, W], got {tuple(image.shape)}")
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
    nbr = layer.last_neighbours[0]  # [N, k]
    n, k = nbr.shape
    edges = torch.stack([nbr.reshape(-1), torch.arange(n).repeat_interleave(k)])
    h, w = image.shape[-2:]
    ids = torch.arange(n)
    rows, cols = torch.div(ids, grid[1], rounding_mode="floor"), ids % grid[1]
    centres = torch.stack([(cols + 0.5) * w / grid[1], (rows + 0.5) * h / grid[0]], dim=1)
    return edges, centres, grid


def draw_face_graph(
    model: nn.Module,
    image: Tensor,
    display: Tensor,
    path: str | Path,
    block: int | None = None,
    nodes: list[int] | None = None,
    dpi: int = 100,
) -> tuple[Tensor, Path]:
    """Draw each node at its patch centre and its k neighbours as edges, over ``display``
    (``[H, W, 3]`` in ``[0, 1]``), to a PNG of ``H × W`` pixels. ``nodes`` restricts the
    drawn edges to those centres. Returns the drawn edges ``[2, E]`` and the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges, centres, _ = face_graph_edges(model, image, block)
    if nodes is not None:
        keep = torch.isin(edges[1], torch.as_tensor(nodes))
        edges = edges[:, keep]
    h, w = display.shape[:2]
    fig = plt.figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(display.numpy(), extent=(0, w, h, 0))
    for j, i in edges.t().tolist():
        ax.plot([centres[i, 0], centres[j, 0]], [centres[i, 1], centres[j, 1]], "-",
                color="yellow", lw=0.8, alpha=0.7)
    ax.scatter(centres[:, 0], centres[:, 1], s=6, c="red")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")
    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return edges, path
