"""An exported ONNX model run by onnxruntime, behind the interface :class:`Predictor` uses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn


class OnnxModel(nn.Module):
    """Run a file written by :func:`pyg_fer.export.to_onnx` with onnxruntime.

    Carries the ``cfg`` (class names, input size, mean/std) read from the file's metadata, so
    :class:`~pyg_fer.inference.Predictor` preprocesses exactly as the checkpoint was trained.
    The forward pass is onnxruntime's; torch only wraps the input and output arrays.

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers (default: ``["CPUExecutionProvider"]``).
        threads: intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, path: str | Path, *, providers: list[str] | None = None,
                 threads: int | None = None) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError("running an ONNX model needs onnxruntime: "
                              "pip install 'pyg-fer[export]'") from err
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file '{path}' does not exist")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(path), options,
                                            providers=providers or ["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        if "pyg_fer.card" not in props:
            raise ValueError(f"'{path}' carries no pyg-fer metadata (export it with "
                             "pyg_fer.export.to_onnx or `pyg-fer export`)")
        card = json.loads(props["pyg_fer.card"])
        self.cfg = dict(card, class_names=json.loads(props["pyg_fer.class_names"]))
        self.path = path
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for normalised images ``[B, C, H, W]``."""
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: arr})[0])

    def extra_repr(self) -> str:
        return f"'{self.path}', model={self.cfg['name']}"
