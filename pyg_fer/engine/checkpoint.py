"""Checkpoints: safetensors weights + a JSON card, and the resumable training state.

A model checkpoint is two files with one stem: ``best.safetensors`` (the state dict) and
``best.json`` (everything needed to rebuild and use the model: registry name and kwargs, class
names, input size, mean/std, metrics, package version, git hash, and the SHA-256 of the weights
file). This module writes them; :mod:`pyg_fer.models.card` owns the format and reads it
(:func:`load_model` rebuilds the model from them, re-exported here); nothing is unpickled.

The training state for ``--resume`` (optimiser, scheduler, gradient scaler, epoch, RNG states,
best metric so far) is a ``torch.save`` of plain tensors, numbers, strings, lists and dicts, read
back with ``torch.load(weights_only=True)``.

Every file is written atomically: to a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import hashlib
import io
import random
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as st_save
from torch import Tensor, nn

from pyg_fer import __version__
from pyg_fer._files import atomic_write_bytes, atomic_write_text, json_text  # noqa: F401  (re-exported)

# The card format and its reading live with the models (the pretrained-weights registry reads
# the same cards); this module writes cards and re-exports the readers for the engine's users.
from pyg_fer.models.card import (  # noqa: F401  (re-exported)
    FORMAT,
    FORMAT_VERSION,
    build_from_card,
    load_model,
    read_card,
    read_weights,
)

#: Builder kwargs that load external weights: recorded in the card, not replayed on rebuild.
_INIT_ONLY_KWARGS = ("weights", "pretrained", "checkpoint_path")

PathLike = str | Path


def git_hash() -> str | None:
    """The commit of the pyg-fer source tree, or ``None`` outside a git checkout of pyg-fer
    (an installed wheel's parent folder may be the user's own repository)."""
    root = Path(__file__).resolve().parent.parent.parent
    if not ((root / ".git").exists() and (root / "setup.cfg").is_file()):
        return None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], check=False, cwd=root, capture_output=True, text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _jsonable(value: Any, key: str) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, key) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise ValueError(f"checkpoint field '{key}' holds {value!r}, which JSON cannot store")


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def model_card(model: nn.Module) -> dict[str, Any]:
    """The rebuild information of ``model.cfg`` as a JSON-safe dict."""
    model = unwrap(model)
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, Mapping) or "name" not in cfg:
        raise ValueError(
            f"{type(model).__name__} has no 'cfg' dict with a 'name'; only registered pyg-fer "
            "models (which carry model.cfg) can be checkpointed"
        )
    kwargs = dict(cfg.get("kwargs") or {})
    if hasattr(model, "rebuild_kwargs"):  # settings changed since construction
        kwargs.update(model.rebuild_kwargs())
    init = {k: kwargs.pop(k) for k in _INIT_ONLY_KWARGS if k in kwargs}
    return _jsonable(
        {
            "name": cfg["name"],
            "kwargs": kwargs,
            "init_kwargs": init,
            "num_classes": cfg.get("num_classes"),
            "class_names": cfg.get("class_names"),
            "input_size": cfg.get("input_size"),
            "mean": cfg.get("mean"),
            "std": cfg.get("std"),
        },
        "model",
    )


@dataclass(frozen=True)
class InputSpec:
    """What a model expects as input and what its outputs mean, as recorded in its card."""

    input_size: tuple[int, int, int]  #: (C, H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    class_names: tuple[str, ...]  #: one per output; "0", "1", ... when the card names none


def input_spec(model: nn.Module) -> InputSpec:
    """The input size, normalisation and class names ``model`` was trained with.

    Read from the model's card (``model.cfg`` of a registered model; :func:`load_model`
    restores it from the checkpoint), so inference preprocesses exactly as training did.

    Raises:
        ValueError: the model carries no pyg-fer ``cfg``, or the card lacks one of the fields.
    """
    card = model_card(model)
    missing = [k for k in ("input_size", "mean", "std") if card.get(k) is None]
    if missing or (card.get("class_names") is None and card.get("num_classes") is None):
        raise ValueError(f"model '{card['name']}' records no {missing or ['num_classes']} in "
                         "its cfg")
    names = card["class_names"] or [str(i) for i in range(card["num_classes"])]
    return InputSpec(tuple(int(v) for v in card["input_size"]),
                     tuple(float(v) for v in card["mean"]), tuple(float(v) for v in card["std"]),
                     tuple(str(c) for c in names))


def input_dtype(model: nn.Module) -> torch.dtype:
    """The precision ``model`` takes its images at: that of its first floating-point parameter
    (a ``.double()`` or ``.half()`` model), float32 for a model without one."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def cpu_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s (unwrapped) state dict as contiguous CPU tensors that share no storage
    (safetensors refuses tied weights); what every checkpoint file stores."""
    return {k: v.detach().to("cpu").contiguous().clone()
            for k, v in unwrap(model).state_dict().items()}


def save_checkpoint(
    model: nn.Module,
    stem: PathLike,
    *,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    state: Mapping[str, Tensor] | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` and ``<stem>.json``.

    Args:
        model: a registered pyg-fer model (possibly DDP-wrapped) carrying ``model.cfg``.
        stem: path without suffix, e.g. ``runs/demo/best``.
        metrics: metrics to record in the card (accuracy, epoch, ...).
        extra: further JSON-safe fields (e.g. the training config).
        state: ``cpu_state_dict(model)`` when the caller already has it (default: taken here).

    Returns:
        The paths of the weights file and of the JSON card.
    """
    stem = Path(stem)
    bare = unwrap(model)
    card = model_card(bare)
    blob = st_save(dict(cpu_state_dict(bare) if state is None else state),
                   metadata={"format": FORMAT})
    weights = stem.with_name(stem.name + ".safetensors")
    card_path = stem.with_name(stem.name + ".json")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "weights": weights.name,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "model": card,
        "metrics": _jsonable(dict(metrics or {}), "metrics"),
        "pyg_fer_version": __version__,
        "torch_version": torch.__version__,
        "git_hash": git_hash(),
    }
    if extra:
        meta.update(_jsonable(dict(extra), "extra"))
    atomic_write_bytes(weights, blob)
    atomic_write_text(card_path, json_text(meta, indent=2))
    return weights, card_path


# ----------------------------------------------------------------------------- training state


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU + CUDA) RNG states as plain tensors and lists."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "python_version": py_state[0],
        "python": torch.tensor(py_state[1], dtype=torch.int64),
        "numpy_key": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate((state["python_version"], tuple(state["python"].tolist()), None))
    np.random.set_state(
        ("MT19937", state["numpy_key"].numpy().astype(np.uint32), state["numpy_pos"],
         state["numpy_has_gauss"], state["numpy_gauss"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(path: PathLike, state: Mapping[str, Any]) -> None:
    """Atomically ``torch.save`` a dict of plain tensors / numbers / strings / lists / dicts."""
    buf = io.BytesIO()
    torch.save(dict(state, format=FORMAT), buf)
    atomic_write_bytes(path, buf.getvalue())


def load_train_state(path: PathLike) -> dict[str, Any]:
    """Read a training state with ``torch.load(weights_only=True)``; clear error when foreign."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training state '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- torch raises several types for truncated / foreign pickles
        raise ValueError(
            f"training state '{path}' cannot be read (truncated or foreign file?): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"'{path}' is not a pyg-fer training state")
    return state
