"""An exported ONNX model run by onnxruntime, behind the interface :class:`Predictor` uses.

NumPy and onnxruntime only: with this module a deployment predicts from an exported file
without torch installed (``Predictor.from_onnx``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxModel", "decode_onnx_metadata", "encode_onnx_metadata"]

METADATA_PREFIX = "pyg_fer."
_TEXT_KEYS = ("model", "version")
_JSON_KEYS = ("class_names", "input_size", "mean", "std", "card")


def encode_onnx_metadata(fields: Mapping[str, Any]) -> dict[str, str]:
    """``metadata_props`` entries (strings) for the fields :func:`decode_onnx_metadata` reads:
    ``model`` and ``version`` as text, the others as JSON, each under ``pyg_fer.<field>``."""
    missing = [k for k in (*_TEXT_KEYS, *_JSON_KEYS) if k not in fields]
    if missing:
        raise ValueError(f"ONNX metadata needs the fields {missing}")
    return {f"{METADATA_PREFIX}{k}": str(fields[k]) if k in _TEXT_KEYS else json.dumps(fields[k])
            for k in (*_TEXT_KEYS, *_JSON_KEYS)}


def decode_onnx_metadata(props: Mapping[str, str], source: str | Path) -> dict[str, Any]:
    """What :func:`pyg_fer.export.to_onnx` embedded in an ONNX file's ``metadata_props``:
    ``model``, ``version``, ``class_names``, ``input_size``, ``mean``, ``std`` and the full
    ``card``, decoded from their JSON strings.

    Raises:
        ValueError: naming ``source``, when the file carries no pyg-fer metadata or a field is
            missing or not valid JSON.
    """
    if f"{METADATA_PREFIX}model" not in props:
        raise ValueError(f"'{source}' carries no pyg-fer metadata (export it with "
                         "pyg_fer.export.to_onnx or `pyg-fer export`)")
    out: dict[str, Any] = {}
    for key in (*_TEXT_KEYS, *_JSON_KEYS):
        name = f"{METADATA_PREFIX}{key}"
        if name not in props:
            raise ValueError(f"'{source}': metadata key '{name}' is missing")
        try:
            out[key] = props[name] if key in _TEXT_KEYS else json.loads(props[name])
        except json.JSONDecodeError as err:
            raise ValueError(f"'{source}': metadata key '{name}' is not valid JSON: {err}"
                             ) from None
    return out


class OnnxModel:
    """Run a file written by :func:`pyg_fer.export.to_onnx` with onnxruntime.

    Carries what :class:`~pyg_fer.inference.Predictor` needs to preprocess exactly as the
    checkpoint was trained — ``input_size``, ``mean``, ``std``, ``class_names`` and the card
    as ``cfg`` — read from the file's metadata. Calling it maps normalised images
    ``[B, C, H, W]`` (float32 NumPy) to logits ``[B, num_classes]``; no torch is involved.

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers (default: ``["CPUExecutionProvider"]``).
        threads: intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, path: str | Path, *, providers: list[str] | None = None,
                 threads: int | None = None) -> None:
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
        meta = decode_onnx_metadata(self.session.get_modelmeta().custom_metadata_map, path)
        self.path = path
        self.input_size = tuple(int(v) for v in meta["input_size"])
        self.mean = tuple(float(v) for v in meta["mean"])
        self.std = tuple(float(v) for v in meta["std"])
        self.class_names = tuple(str(c) for c in meta["class_names"])
        self.cfg = dict(meta["card"], class_names=list(self.class_names))
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        #: the file's fixed batch size (``to_onnx(batch=n)``), or ``None`` for a dynamic batch
        self.batch: int | None = first.shape[0] if isinstance(first.shape[0], int) else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits ``[B, num_classes]`` for normalised images ``[B, C, H, W]``, any ``B``: a file
        with a fixed batch runs ``batch`` images at a time, the last run padded with copies of
        the last image whose outputs are dropped (exact for per-sample models)."""
        arr = np.ascontiguousarray(x, dtype=np.float32)
        if self.batch is None:
            return self.session.run(None, {self.input_name: arr})[0]
        out = []
        for start in range(0, len(arr), self.batch):
            chunk = arr[start:start + self.batch]
            real = len(chunk)
            if real < self.batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - real, 0)])
            out.append(self.session.run(None, {self.input_name: chunk})[0][:real])
        return np.concatenate(out)

    def __repr__(self) -> str:
        return f"OnnxModel('{self.path}', model={self.cfg.get('name')})"
