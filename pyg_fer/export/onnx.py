"""ONNX and ``torch.export`` export of registered pyg-fer models.

The models export in evaluation mode: Face2Nodes' k-NN graph is the dense backend (pairwise
distances + ``topk`` with a static ``k``), RG-Conv's fused dense aggregation, and AGFN's
batch-independent evaluation graph. Files are written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

import pyg_fer
from pyg_fer._files import atomic_path
from pyg_fer.engine.checkpoint import input_spec, model_card, unwrap
from pyg_fer.inference.onnx_model import decode_onnx_metadata, encode_onnx_metadata

DEFAULT_OPSET = 18
INSTALL_HINT = "pip install 'pyg-fer[export]'"


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(f"ONNX export needs the '{module}' package: {INSTALL_HINT}") from err


def export_metadata(model: nn.Module) -> dict[str, str]:
    """The checkpoint card fields embedded in an exported file, as strings (JSON values)."""
    spec = input_spec(model)
    card = model_card(model)
    return encode_onnx_metadata({
        "model": card["name"], "version": pyg_fer.__version__,
        "class_names": list(spec.class_names), "input_size": list(spec.input_size),
        "mean": list(spec.mean), "std": list(spec.std), "card": card,
    })


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read back what :func:`to_onnx` embedded: model, version, class_names, input_size, mean,
    std (decoded), and the full card."""
    onnx = _require("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    return decode_onnx_metadata({p.key: p.value for p in proto.metadata_props}, path)


def _trace_inputs(model: nn.Module, batch: str | int) -> tuple[torch.Tensor, tuple | None]:
    """An example input and the ``dynamic_shapes`` for exporting ``model`` at ``batch``.

    A dynamic batch is traced at batch 2: a batch of 1 would let the exporter specialise the
    batch dimension to 1.
    """
    if not (batch == "dynamic" or (isinstance(batch, int) and batch >= 1)):
        raise ValueError(f"batch must be 'dynamic' or a positive int, got {batch!r}")
    c, h, w = input_spec(model).input_size
    param = next(model.parameters(), None)
    device = param.device if param is not None else "cpu"
    x = torch.randn(2 if batch == "dynamic" else int(batch), c, h, w, device=device)
    dynamic = ({0: torch.export.Dim("batch", min=1)},) if batch == "dynamic" else None
    return x, dynamic


# RDGCN blocks keep their last neighbour table for inspection (a plain attribute, not state);
# torch.export warns about it but it is not part of the exported computation.
_LAST_NEIGHBOURS = r"(?s).*last_neighbours.*assigned during export"


def _prepare(model: nn.Module) -> nn.Module:
    model = unwrap(model)
    model_card(model)  # a clear error for models without a pyg-fer cfg
    other = {t.dtype for t in (*model.parameters(), *model.buffers())
             if t.is_floating_point() and t.dtype != torch.float32}
    if other:  # the file takes float32 images (Predictor.from_onnx feeds float32)
        raise ValueError(f"export needs a float32 model; this one holds "
                         f"{', '.join(sorted(map(str, other)))} tensors: call model.float() "
                         "first")
    return model.eval()


def to_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    batch: str | int = "dynamic",
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export ``model`` (eval mode) to an ONNX file with the card's metadata embedded.

    Args:
        model: a registered pyg-fer model (it carries ``model.cfg``), e.g. from
            :func:`pyg_fer.engine.load_model`.
        path: the ``.onnx`` file to write (atomically).
        batch: ``"dynamic"`` (one file for any batch size) or a fixed batch size.
        opset: the ONNX opset (default 18).

    Returns:
        The written path. Input ``"images"`` ``[B, C, H, W]`` (normalised), output ``"logits"``
        ``[B, num_classes]``.

    Raises:
        ImportError: onnx/onnxscript missing (``pip install 'pyg-fer[export]'``).
        ValueError: the model holds floating-point tensors other than float32 (``.half()``,
            ``.double()``): the file's input is float32.
        RuntimeError: the exporter failed, or could not give the requested opset, naming the
            model.
    """
    onnx = _require("onnx")
    _require("onnxscript")
    model = _prepare(model)
    name = model_card(model)["name"]
    meta = export_metadata(model)
    x, dynamic = _trace_inputs(model, batch)
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", _LAST_NEIGHBOURS, UserWarning)
                program = torch.onnx.export(
                    model, (x,), input_names=["images"], output_names=["logits"],
                    dynamic_shapes=dynamic, opset_version=opset,
                    dynamo=True, external_data=False, optimize=True, verbose=False,
                )
        except Exception as err:  # the exporter raises many types; name the model
            raise RuntimeError(f"ONNX export of model '{name}' failed: {err}") from err
        proto = program.model_proto
        written = {entry.domain: entry.version for entry in proto.opset_import}.get("")
        if written != opset:  # the exporter falls back to its own opset when it cannot convert
            raise RuntimeError(f"ONNX export of model '{name}' gave opset {written}, not the "
                               f"requested {opset}: the exporter cannot convert this model to "
                               f"opset {opset} (use 18 or later)")
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
    return path


def to_torch_export(
    model: nn.Module, path: str | os.PathLike, *, batch: str | int = "dynamic"
) -> Path:
    """Export ``model`` (eval mode) with ``torch.export.export`` and save it (``.pt2``).

    The card's metadata (:func:`export_metadata`) is stored in the archive's extra files under
    ``pyg_fer.json``; load with ``torch.export.load(path)`` and call ``.module()``. The model
    must be float32, as for :func:`to_onnx`.
    """
    model = _prepare(model)
    name = model_card(model)["name"]
    x, dynamic = _trace_inputs(model, batch)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", _LAST_NEIGHBOURS, UserWarning)
            program = torch.export.export(model, (x,), dynamic_shapes=dynamic)
    except Exception as err:
        raise RuntimeError(f"torch.export of model '{name}' failed: {err}") from err
    path = Path(path)
    with atomic_path(path, suffix=".pt2") as tmp:
        torch.export.save(program, str(tmp),
                          extra_files={"pyg_fer.json": json.dumps(export_metadata(model))})
    return path
