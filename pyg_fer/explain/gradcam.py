"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018) on hooks.

CNN models are explained on the output map of a chosen ResNet stage (1-4); graph models
(Face2Nodes, ViG) on the node features of a chosen RDGCN block (1-L), the nodes reshaped to
their patch grid. AGFN models are explained on their extractor (ResNet stages or the
Face2Nodes blocks). The map is upsampled bilinearly to the image and scaled to ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["grad_cam", "num_blocks", "target_layer"]


def _layers(model: nn.Module) -> tuple[list[nn.Module], tuple[int, int] | None, str]:
    trunk = model
    if hasattr(model, "graph_norm") and hasattr(model, "trunk"):  # AGFN: explain the extractor
        trunk = model.trunk
    if hasattr(trunk, "blocks"):
        return list(trunk.blocks), tuple(trunk.embed.grid_size), "RDGCN block"
    if hasattr(trunk, "stages") or hasattr(trunk, "trunk"):
        trunk = trunk if hasattr(trunk, "stages") else trunk.trunk
        return list(trunk.stages), None, "ResNet stage"
    raise TypeError(f"grad_cam: no blocks or ResNet stages found in {type(model).__name__}")


def num_blocks(model: nn.Module) -> int:
    """How many RDGCN blocks (graph models) or ResNet stages (CNNs) ``block`` may name."""
    return len(_layers(model)[0])


def target_layer(
    model: nn.Module, block: int | None = None
) -> tuple[nn.Module, tuple[int, int] | None]:
    """The module whose output Grad-CAM weighs, and the node grid for graph outputs.

    ``block`` is 1-based (the RDGCN block for graph models, the ResNet stage for CNNs); the
    default is the last one. Returns ``(module, grid)`` where ``grid`` is ``(H, W)`` of the
    patch grid when the module outputs nodes ``[B, N, D]`` and ``None`` for feature maps.
    """
    layers, grid, what = _layers(model)
    n = len(layers)
    if block is None:
        block = n
    if not 1 <= int(block) <= n:
        raise ValueError(
            f"block={block} is out of range: {type(model).__name__} has {what}s 1..{n}"
        )
    return layers[int(block) - 1], grid


def _resolve_class(
    target: int | str | None, logits: Tensor, class_names: Sequence[str] | None,
    model: nn.Module | None = None,
) -> Tensor:
    """The target class of each row of ``logits``: ``target`` as an index, as a name among
    ``class_names`` (default: the ``class_names`` a pyg-fer model records in ``model.cfg``),
    or the predicted class for ``None``."""
    if class_names is None and model is not None:
        class_names = (getattr(model, "cfg", None) or {}).get("class_names")
    num_classes = logits.size(1)
    if target is None:
        return logits.argmax(dim=1)
    if isinstance(target, str):
        if class_names is None or target not in class_names:
            raise ValueError(
                f"unknown class name {target!r}; known classes: {list(class_names or [])}"
            )
        target = list(class_names).index(target)
    if not 0 <= int(target) < num_classes:
        raise ValueError(f"class index {target} is out of range 0..{num_classes - 1}")
    return torch.full((logits.size(0),), int(target), dtype=torch.long, device=logits.device)


def grad_cam(
    model: nn.Module,
    images: Tensor,
    target: int | str | None = None,
    *,
    block: int | None = None,
    method: str = "gradcam",
    class_names: Sequence[str] | None = None,
    upsample: bool = True,
) -> tuple[Tensor, Tensor]:
    """Class-activation maps ``[B, H, W]`` in ``[0, 1]`` at image resolution (all 0 for a map that
    is flat at the layer's resolution: it localises nothing), and the target
    classes ``[B]``.

    Args:
        model: a pyg-fer model (put in eval mode here and restored afterwards).
        images: normalised images ``[B, C, H, W]``.
        target: class index, class name (among ``class_names``) or ``None`` for the predicted
            class of each image.
        block: 1-based RDGCN block (graph models) or ResNet stage (CNNs); default the last.
        method: ``"gradcam"`` or ``"gradcam++"``.
        class_names (sequence of str, optional): the names a string ``target`` is looked up
            in (default: the model's, ``model.cfg["class_names"]``).
        upsample: ``False`` returns the map at the layer's own resolution instead: the patch
            grid ``[B, h, w]`` of a graph model (node ``n`` at ``divmod(n, w)``, so
            ``cam.flatten(1)`` is one importance per node) or the stage's feature map.
    """
    if method not in ("gradcam", "gradcam++"):
        raise ValueError(f"method must be 'gradcam' or 'gradcam++', got {method!r}")
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    layer, grid = target_layer(model, block)
    store: dict[str, Tensor] = {}

    def hook(_m: nn.Module, _i: object, out: Tensor) -> None:
        out.retain_grad()
        store["act"] = out

    was_training = model.training
    model.eval()
    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            x = images.detach().requires_grad_(True)  # so hooks see a graph even if frozen
            logits = model(x)
            classes = _resolve_class(target, logits, class_names, model)
            score = logits.gather(1, classes[:, None]).sum()
            model.zero_grad(set_to_none=True)
            score.backward()
    finally:
        handle.remove()
        model.train(was_training)
    act, grad = store["act"].detach(), store["act"].grad.detach()
    if grid is not None:  # nodes [B, N, D] -> [B, D, H, W]
        b, n, d = act.shape
        act = act.transpose(1, 2).reshape(b, d, *grid)
        grad = grad.transpose(1, 2).reshape(b, d, *grid)
    if method == "gradcam":
        weights = grad.mean(dim=(2, 3), keepdim=True)
    else:
        g2, g3 = grad.pow(2), grad.pow(3)
        denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g3
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        weights = (alpha * F.relu(grad)).sum(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    # A map that is flat at the layer's resolution localises nothing: it stays 0 everywhere
    # rather than having the upsampling's rounding noise stretched to [0, 1].
    native = cam.flatten(1)
    low, high = native.min(1).values, native.max(1).values
    flat = (high - low) <= 1e-6 * high.abs().clamp_min(1e-30)
    if upsample:
        cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
    cam = cam[:, 0]
    values = cam.flatten(1)
    lo, hi = values.min(1).values, values.max(1).values
    cam = (cam - lo[:, None, None]) / (hi - lo).clamp_min(1e-12)[:, None, None]
    return cam.masked_fill(flat[:, None, None], 0.0), classes
