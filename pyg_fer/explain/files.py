"""Explanation figures for image files, as ``pyg-fer explain`` writes them.

Images are read and faces cropped and preprocessed exactly as :class:`pyg_fer.inference.
Predictor` does for the checkpoint (its evaluation transform, its detector and crop margin);
each face then gets the figures of the requested methods, written atomically as PNGs. An image
that cannot be read, or a video, gives a result with an ``error`` and the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from pyg_fer.explain._plot import denormalise, overlay_heatmap, write_png
from pyg_fer.explain.explainers import draw_edge_mask, explain_block_edges
from pyg_fer.explain.gradcam import grad_cam, num_blocks, target_layer
from pyg_fer.explain.graph import draw_face_graph, draw_neighbourhoods

__all__ = ["METHODS", "ExplainResult", "explain_images", "resolve_target"]

#: What :func:`explain_images` (``pyg-fer explain --method``) can draw: Grad-CAM, Grad-CAM++,
#: a block's face graph with one node's neighbourhood, and PyG's GNNExplainer on a block's edges.
METHODS = ("gradcam", "gradcam++", "graph", "gnnexplainer")


@dataclass
class ExplainResult:
    """One face explained (or one input that could not be, or held no face).

    ``face`` is the face's index in reading order (``None`` without ``detect``), ``label``
    the predicted class with its probability ``prob``, ``target`` the class explained,
    ``files`` the PNGs written; ``error`` says why an input gave no figure (``files`` empty).
    """

    source: str
    face: int | None = None
    label: str | None = None
    prob: float | None = None
    target: str | None = None
    files: list[Path] = field(default_factory=list)
    error: str | None = None


def resolve_target(target: int | str | None, class_names: Sequence[str]) -> int | None:
    """A class given by name (or index, as an int or a string of digits) as an index;
    ``ValueError`` naming the known classes for an unknown name or an index out of range."""
    if target is None:
        return None
    names = list(class_names)
    if isinstance(target, str) and target in names:
        return names.index(target)
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        index = int(target)
        if 0 <= index < len(names):
            return index
        raise ValueError(f"class index {index} is out of range 0..{len(names) - 1} "
                         f"(classes: {names})")
    raise ValueError(f"unknown class name {target!r}; the checkpoint's classes are {names}")


def _check(model: nn.Module, methods: Sequence[str], block: int | None, size: int,
           top: int | None, node: int | None) -> None:
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"unknown method(s) {bad}; expected some of {METHODS}")
    layer, grid = target_layer(model, block)  # raises for a block out of range
    graph_only = [m for m in methods if m in ("graph", "gnnexplainer")]
    name = getattr(model, "cfg", {}).get("name", type(model).__name__)
    if graph_only and grid is None:
        raise ValueError(f"method(s) {graph_only} need a graph model (RDGCN blocks); "
                         f"{name} is a CNN: use gradcam or gradcam++")
    if size < 16:
        raise ValueError(f"size={size} is too small for a figure; give 16 pixels or more")
    if top is not None and top < 1:
        raise ValueError(f"top={top} must be >= 1")
    if top is not None and "graph" in methods and top > grid[0] * grid[1]:
        raise ValueError(f"top={top} exceeds the {grid[0] * grid[1]} nodes of {name}")
    edges = grid[0] * grid[1] * layer.k if grid is not None else 0  # k edges into each node
    if top is not None and "gnnexplainer" in methods and top > edges:
        raise ValueError(f"top={top} exceeds the {edges} edges of {name}'s block graph")
    if node is not None and (grid is None or not 0 <= node < grid[0] * grid[1]):
        n = 0 if grid is None else grid[0] * grid[1]
        raise ValueError(f"node={node} is out of range: {name} has nodes 0..{n - 1}")


def explain_images(
    predictor: object,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    methods: Sequence[str] = ("gradcam",),
    block: int | None = None,
    target: int | str | None = None,
    size: int = 224,
    top: int | None = None,
    node: int | None = None,
    epochs: int = 100,
) -> Iterator[ExplainResult]:
    """Explain every face of ``inputs`` (image files or folders of them) into ``out``.

    ``predictor`` is a :class:`~pyg_fer.inference.Predictor` on the CPU: its model, transform,
    detector (``"none"``: each image is one face) and margin are used. Per face and method,
    writes ``<stem>[_face<i>]_<method>_b<L>.png`` (``gradcam++`` as ``gradcampp``):
    ``size × size`` Grad-CAM overlays on the face as the model saw it, the face graph
    (:func:`~pyg_fer.explain.draw_face_graph`, with ``top``) and for ``graph`` also the
    block-1-to-L small multiples of ``node`` (``<stem>…_neighbourhood_b<L>.png``), or the
    GNNExplainer edge mask (:func:`~pyg_fer.explain.explain_block_edges`, ``epochs``).
    The arguments are checked here, before any image is read (``ValueError`` naming a block
    out of range, an unknown class, a method a CNN cannot do); the results come lazily.
    """
    model = predictor.model
    names = list(predictor.class_names)
    methods = list(methods)
    _check(model, methods, block, size, top, node)
    cls = resolve_target(target, names)
    blk = int(block) if block is not None else num_blocks(model)
    return _run(predictor, inputs, Path(out), methods, blk, cls, size, top, node, epochs)


def _run(predictor, inputs, out, methods, blk, cls, size, top, node, epochs
         ) -> Iterator[ExplainResult]:
    from pyg_fer.inference import FaceError, WholeImage
    from pyg_fer.inference.sources import iter_frames

    model = predictor.model
    names = list(predictor.class_names)
    used: set[str] = set()
    items = predictor.expand([str(p) for p in inputs])
    for item in items:
        if item.is_video:
            yield ExplainResult(item.source, error=f"'{item.source}' is a video; pyg-fer "
                                                   "explain takes images")
            continue
        for frame in iter_frames([item]):
            if frame.error is not None:
                yield ExplainResult(frame.source, error=frame.error)
                continue
            try:
                faces = predictor.faces(frame.image, source=frame.source)
            except FaceError as err:
                yield ExplainResult(frame.source, error=str(err))
                continue
            if not faces:
                yield ExplainResult(frame.source, error=f"{frame.source}: no face found")
                continue
            whole = isinstance(predictor.detector, WholeImage)
            stem = Path(frame.source).stem
            for i, (_, crop) in enumerate(faces):
                x = torch.from_numpy(predictor.transform(crop))[None]
                base = stem if whole else f"{stem}_face{i}"
                while base in used:
                    base += "_"
                used.add(base)
                yield _explain_face(model, x, frame.source, None if whole else i, base,
                                    out, names, predictor, methods, blk, cls, size, top, node,
                                    epochs)


def _explain_face(model, x, source, face, base, out, names, predictor, methods, block, cls,
                  size, top, node, epochs) -> ExplainResult:
    with torch.no_grad():
        probs = model.eval()(x).float().softmax(1)[0]
    pred = int(probs.argmax())
    target = pred if cls is None else cls
    display = denormalise(x, predictor.mean, predictor.std, size)
    files = []
    for method in methods:
        tag = method.replace("++", "pp")
        path = out / f"{base}_{tag}_b{block}.png"
        if method in ("gradcam", "gradcam++"):
            cam, _ = grad_cam(model, x, target, block=block, method=method)
            files.append(write_png(path, overlay_heatmap(display, cam[0])))
        elif method == "graph":
            files.append(draw_face_graph(model, x, display, path, block, top=top,
                                         target=target)[1])
            hood = out / f"{base}_neighbourhood_b{block}.png"
            files.append(draw_neighbourhoods(model, x, display, hood, node, block=block,
                                             target=target, panel=max(96, size // 2))[2])
        else:
            expl = explain_block_edges(model, x, block, target, epochs=epochs)
            files.append(draw_edge_mask(expl, display, path, top=top))
    return ExplainResult(source, face, names[pred], float(probs[pred]), names[target], files)
