"""PyG's explainers on one RDGCN block: the block's graph part as a PyG graph.

The node features :math:`X^l` entering block ``l`` and that block's k-NN edges are handed to
:class:`torch_geometric.explain.Explainer` as ``(x, edge_index)``; the model it explains runs
block ``l`` on that graph (its conv on ``edge_index`` through ``propagate``, which honours the
explainer's edge mask) and then the rest of the network unchanged, so the mask learnt is the
one that keeps the whole model's class score. Only block ``l``'s conv is visible to the
explainer, so only its edges are masked (the later blocks rebuild their own graphs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyg_fer.explain._plot import as_display, new_figure, node_centres, save_figure
from pyg_fer.explain.gradcam import _resolve_class, num_blocks, target_layer
from pyg_fer.explain.graph import _one_image
from pyg_fer.nn.knn import neighbours_to_edge_index

__all__ = ["BlockExplanation", "BlockGraphModel", "explain_block_edges", "draw_edge_mask"]

ALGORITHMS = ("gnnexplainer", "integrated_gradients", "saliency")


@dataclass
class BlockExplanation:
    """What :func:`explain_block_edges` returns.

    Attributes:
        block: the 1-based block explained.
        edge_index: ``[2, N k]`` the block's k-NN edges (row 0 neighbour ``j``, row 1 centre
            ``i``, as :attr:`~pyg_fer.nn.RDGCNBlock.last_edge_index` for one image).
        edge_mask: ``[N k]`` the explainer's importance of each edge, in ``[0, 1]``.
        x: ``[N, D]`` the node features :math:`X^l` entering the block.
        target: the class explained.
        grid: the patch grid ``(h, w)`` of the nodes.
    """

    block: int
    edge_index: Tensor
    edge_mask: Tensor
    x: Tensor
    target: int
    grid: tuple[int, int]


class BlockGraphModel(nn.Module):
    """``(x, edge_index) -> logits [1, C]``: block ``block`` of ``model`` run on the given
    graph of one image's nodes, then the rest of ``model``.

    ``x`` ``[N, D]`` replaces :math:`X^l`; block ``l`` computes
    :math:`Z = F_{out}(\\mathrm{GConv}(F_{in}(X), \\text{edge\\_index})) + X`,
    :math:`X^{l+1} = \\mathcal{M}(Z) + Z` (Face2Nodes Eq. 9-10) and the model finishes its
    forward from there on ``image``. The conv is the only registered submodule, so an
    explainer's masks reach that conv alone. ``model`` must be in eval mode.
    """

    def __init__(self, model: nn.Module, image: Tensor, block: int) -> None:
        super().__init__()
        layer, grid = target_layer(model, block)
        if grid is None or not hasattr(layer, "conv"):
            raise TypeError(f"{type(model).__name__} has no RDGCN blocks to explain")
        self.conv = layer.conv
        self._parts = (model, layer, _one_image(image))  # a tuple: not registered submodules

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        model, layer, image = self._parts
        y = layer.fc_in(x[None])[0]
        z = x[None] + layer.drop_path(layer.fc_out(self.conv(y, edge_index)[None]))
        out = layer.ffn(z)
        layer.forward = lambda _x: out  # the model's own call of the block returns this
        try:
            return model(image)
        finally:
            del layer.forward


def _block_input(model: nn.Module, image: Tensor, block: int) -> tuple[Tensor, Tensor]:
    layer, _ = target_layer(model, block)
    store: dict[str, Tensor] = {}
    handle = layer.register_forward_pre_hook(lambda _m, args: store.__setitem__("x", args[0]))
    try:
        with torch.no_grad():
            logits = model(image)
    finally:
        handle.remove()
    return store["x"][0].detach(), logits


def explain_block_edges(
    model: nn.Module,
    image: Tensor,
    block: int | None = None,
    target: int | str | None = None,
    *,
    class_names: list[str] | None = None,
    algorithm: str = "gnnexplainer",
    epochs: int = 100,
    lr: float = 0.01,
    seed: int = 0,
    x: Tensor | None = None,
) -> BlockExplanation:
    """Edge importances of RDGCN block ``block`` for one image, by a PyG explainer.

    Args:
        model: a graph model (Face2Nodes, ViG, or an AGFN model on Face2Nodes); put in eval
            mode here and restored afterwards.
        image: one normalised image ``[C, H, W]`` or ``[1, C, H, W]``.
        block: 1-based block (default: the last).
        target: class index, class name (among ``class_names``) or ``None`` for the predicted
            class; the explanation is of that class's raw score (``explanation_type=
            "phenomenon"``).
        class_names (list of str, optional): the names a string ``target`` is looked up in
            (default: the model's, ``model.cfg["class_names"]``).
        algorithm: ``"gnnexplainer"`` (:class:`~torch_geometric.explain.algorithm.GNNExplainer`,
            ``epochs`` and ``lr``; the mask is random-initialised under ``seed`` without
            touching the global RNG), or through
            :class:`~torch_geometric.explain.algorithm.CaptumExplainer`
            ``"integrated_gradients"`` / ``"saliency"`` (needs ``pip install
            'pyg-fer[explain]'``; their attributions are scaled to ``[0, 1]`` by the largest
            absolute value).
        epochs (int): GNNExplainer's optimisation steps (default: ``100``).
        lr (float): GNNExplainer's learning rate (default: ``0.01``).
        seed (int): seed of GNNExplainer's random mask initialisation (default: ``0``).
        x: node features ``[N, D]`` to explain instead of the image's :math:`X^l` (a what-if:
            the graph stays the one the block built for ``image``, the rest of the model runs
            on ``image``).
    """
    from torch_geometric.explain import Explainer
    from torch_geometric.explain.algorithm import GNNExplainer

    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    image = _one_image(image)
    layer, grid = target_layer(model, block)
    block = int(block) if block is not None else num_blocks(model)
    was_training = model.training
    model.eval()
    _drop_stale_mask_parameters(model)
    try:
        x_image, logits = _block_input(model, image, block)
        edge_index = neighbours_to_edge_index(layer.last_neighbours[0])
        wrapped = BlockGraphModel(model, image, block)
        if x is None:
            x = x_image
        elif x.shape != x_image.shape:
            raise ValueError(f"x must have the block's input shape {tuple(x_image.shape)}, got "
                             f"{tuple(x.shape)}")
        else:
            with torch.no_grad():
                logits = wrapped(x, edge_index)
        cls = int(_resolve_class(target, logits, class_names, model)[0])
        if algorithm == "gnnexplainer":
            algo = GNNExplainer(epochs=epochs, lr=lr)
        else:
            try:
                import captum  # noqa: F401
            except ImportError:
                raise ImportError(f"algorithm={algorithm!r} runs PyG's CaptumExplainer, which "
                                  "needs captum: pip install 'pyg-fer[explain]'") from None
            from torch_geometric.explain.algorithm import CaptumExplainer

            name = "IntegratedGradients" if algorithm == "integrated_gradients" else "Saliency"
            algo = CaptumExplainer(name)
        explainer = Explainer(
            wrapped, algorithm=algo,
            explanation_type="phenomenon", node_mask_type=None, edge_mask_type="object",
            model_config=dict(mode="multiclass_classification", task_level="graph",
                              return_type="raw"),
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            explanation = explainer(x, edge_index, target=torch.tensor([cls]))
    finally:
        model.train(was_training)
        _drop_stale_mask_parameters(model)
    mask = explanation.edge_mask.detach()
    if algorithm != "gnnexplainer":
        mask = mask.abs() / mask.abs().max().clamp_min(1e-12)
    return BlockExplanation(block, edge_index, mask, x, cls, tuple(grid))


def _drop_stale_mask_parameters(model: nn.Module) -> None:
    """Forget the empty ``_edge_mask`` parameter slot GNNExplainer leaves on each conv.

    GNNExplainer sets a ``Parameter`` mask, so ``nn.Module`` registers ``_edge_mask`` in
    ``_parameters``; ``clear_masks`` sets it to ``None`` but keeps the slot, and PyG's
    ``set_masks`` then wraps the next explainer's mask in a new ``Parameter`` — a leaf cut off
    from Captum's input, which fails with "appears to not have been used in the graph".
    """
    from torch_geometric.nn import MessagePassing

    for module in model.modules():
        if isinstance(module, MessagePassing) and "_edge_mask" in module._parameters \
                and module._parameters["_edge_mask"] is None:
            del module._parameters["_edge_mask"]
            module._edge_mask = None


def draw_edge_mask(
    explanation: BlockExplanation,
    display: Any,
    path: str | Path,
    *,
    top: int | None = None,
    cmap: str = "viridis",
    dpi: int = 100,
) -> Path:
    """The edge mask of ``explanation`` drawn on ``display`` (``[H, W, 3]``), one PNG of
    ``H × W`` pixels: every edge ``j → i`` from centre to neighbour, colour and width by its
    mask value (weakest drawn first); ``top`` keeps only the ``top`` strongest edges."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    disp = as_display(display)
    h, w = disp.shape[:2]
    centres = node_centres(explanation.grid, h, w)
    mask, edges = explanation.edge_mask, explanation.edge_index
    order = torch.argsort(mask)  # strongest last, on top
    if top is not None:
        if not 1 <= int(top) <= mask.numel():
            raise ValueError(f"top={top} must lie in 1..{mask.numel()} (the number of edges)")
        order = order[-int(top):]
    edges, mask = edges[:, order], mask[order]
    fig = new_figure(w, h, dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(disp, extent=(0, w, h, 0))
    segs = np.stack([centres[edges[1]].numpy(), centres[edges[0]].numpy()], axis=1)
    m = mask.numpy()
    ax.add_collection(LineCollection(segs, colors=colormaps[cmap](m), linewidths=0.3 + 3.0 * m,
                                     alpha=0.9))
    ax.scatter(centres[:, 0], centres[:, 1], s=6, c="red", zorder=3)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")
    return save_figure(fig, path)
