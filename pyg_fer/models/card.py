"""The checkpoint card format: reading a card, its safetensors weights, and rebuilding the model.

A pyg-fer checkpoint is two files with one stem: ``<stem>.safetensors`` (the state dict) and
``<stem>.json``, the *card*: registry name and kwargs, class names, input size, mean/std,
metrics, versions and the SHA-256 of the weights file. This module owns the format and reading
it; :mod:`pyg_fer.engine.checkpoint` writes it (training is an engine concern) and the
pretrained-weights registry (:mod:`pyg_fer.models.pretrained`) stores the same card in each
entry. Nothing is unpickled: weights are safetensors, checked against the card's SHA-256
before they are parsed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from torch import nn

from pyg_fer.models._registry import create_model

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "build_from_card",
    "check_card",
    "load_model",
    "load_safetensors_bytes",
    "read_card",
    "read_weights",
    "weights_file",
]

#: The ``format`` field of every card (and the safetensors metadata of every weights file).
FORMAT = "pyg-fer-checkpoint"
#: The card layout version this pyg-fer reads and writes.
FORMAT_VERSION = 1

PathLike = str | Path


def _card_path(path: PathLike) -> Path:
    given, path = str(path), Path(path)
    if path.is_dir():
        path = path / "best.json"
    elif path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    elif path.suffix != ".json":
        path = path.with_name(path.name + ".json")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint card '{path}' does not exist{_entry_hint(given)}")
    return path


def _entry_hint(given: str) -> str:
    """How to load ``given`` when it names registered weights rather than a file."""
    from pyg_fer.models.pretrained import list_pretrained

    try:
        registered = given in list_pretrained()
    except ValueError:  # an unreadable $PYG_FER_WEIGHTS: the missing file is the error here
        return ""
    if not registered:
        return ""
    return (f"; '{given}' is registered weights: `pyg-fer weights --download {given}` "
            f"(Python: pyg_fer.models.download_weights('{given}')) gives its checkpoint card's "
            "path")


def check_card(meta: Any, where: str) -> dict[str, Any]:
    """Check that ``meta`` is a card this pyg-fer reads; ``where`` names it in errors.

    Raises:
        ValueError: not a pyg-fer card, another format version, or a required field missing or
            of the wrong type (the field is named).
    """
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{where} is not a pyg-fer checkpoint card (no \"format\": \"{FORMAT}\")")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint card {where} has format_version {meta.get('format_version')!r}; "
            f"this pyg-fer reads version {FORMAT_VERSION}"
        )
    for key in ("weights", "weights_sha256", "model"):
        if key not in meta:
            raise ValueError(f"checkpoint card {where} lacks the field '{key}'")
    if not isinstance(meta["model"], Mapping) or "name" not in meta["model"]:
        raise ValueError(f"checkpoint card {where}: field 'model' has no registry 'name'")
    model = meta["model"]
    types_ = [  # (field, value, holds, what it must be); a hand-edited card fails here
        ("weights", meta["weights"], isinstance(meta["weights"], str), "a file name"),
        ("weights_sha256", meta["weights_sha256"], isinstance(meta["weights_sha256"], str),
         "a hex string"),
        ("model.name", model["name"], isinstance(model["name"], str), "a string"),
        ("model.kwargs", model.get("kwargs"), isinstance(model.get("kwargs", {}), Mapping),
         "a mapping"),
        ("model.num_classes", model.get("num_classes"),
         model.get("num_classes") is None or (isinstance(model["num_classes"], int)
                                              and not isinstance(model["num_classes"], bool)),
         "an int"),
        ("agfn_enabled", meta.get("agfn_enabled"),
         isinstance(meta.get("agfn_enabled", False), bool), "true or false"),
    ]
    for key, value, holds, what in types_:
        if not holds:
            raise ValueError(f"checkpoint card {where}: field '{key}' must be {what}, got "
                             f"{value!r}")
    return meta


def read_card(path: PathLike) -> dict[str, Any]:
    """Read and check a checkpoint's JSON card (``.json``, ``.safetensors``, stem or run dir)."""
    card_path = _card_path(path)
    try:
        meta = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"checkpoint card '{card_path}' is not valid JSON (truncated or foreign file?): {err}"
        ) from None
    check_card(meta, f"'{card_path}'")
    meta["_card_path"] = str(card_path)
    return meta


def load_safetensors_bytes(blob: bytes, sha256: str, where: str) -> dict[str, torch.Tensor]:
    """Parse safetensors bytes after checking their SHA-256 against ``sha256``.

    Raises:
        ValueError: the hash differs (the message names both hashes) or the bytes are not a
            safetensors file; ``where`` names the file.
    """
    actual = hashlib.sha256(blob).hexdigest()
    if actual != sha256:
        raise ValueError(
            f"{where} has SHA-256 {actual}, expected {sha256} (truncated, corrupted or replaced "
            "file)"
        )
    try:
        return st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ValueError(f"{where} is not a safetensors file: {err}") from None


def weights_file(meta: Mapping[str, Any]) -> Path:
    """The weights file a card (from :func:`read_card`) names, beside the card.

    Raises:
        FileNotFoundError: naming the file and the card, when it does not exist.
    """
    card_path = Path(meta["_card_path"])
    weights = card_path.parent / meta["weights"]
    if not weights.is_file():
        raise FileNotFoundError(f"checkpoint weights '{weights}' (named by '{card_path}') "
                                "do not exist")
    return weights


def read_weights(meta: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Load the state dict a card (from :func:`read_card`) points to, checking its SHA-256."""
    card_path = Path(meta["_card_path"])
    weights = weights_file(meta)
    return load_safetensors_bytes(
        weights.read_bytes(), meta["weights_sha256"],
        f"checkpoint weights '{weights}' (card '{card_path}')")


def card_model_kwargs(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The builder keywords a card describes: architecture ``kwargs`` plus ``num_classes``,
    ``class_names``, ``mean`` and ``std``."""
    card = meta["model"]
    kwargs = dict(card.get("kwargs") or {})
    for key in ("num_classes", "class_names", "mean", "std"):
        if card.get(key) is not None:
            kwargs[key] = card[key]
    return kwargs


def build_from_card(meta: Mapping[str, Any]) -> nn.Module:
    """Build the (untrained) model described by a checkpoint card.

    The card's architecture (``kwargs``, ``num_classes``) and data metadata (``class_names``,
    ``mean``, ``std``) go to the model's builder, which writes ``model.cfg`` from them.
    """
    try:
        return create_model(meta["model"]["name"], **card_model_kwargs(meta))
    except (ValueError, TypeError) as err:  # TypeError: a keyword the builder does not take
        raise ValueError(f"checkpoint '{meta['_card_path']}' (model {meta['model']['name']!r}, "
                         f"its 'kwargs'): {err}") from None


def load_model(
    path: PathLike, *, device: str | torch.device = "cpu", strict: bool = True
) -> nn.Module:
    """Rebuild a trained model from a checkpoint, in eval mode.

    Args:
        path: the ``.json`` card, the ``.safetensors`` weights, their common stem, or a run
            folder (its ``best`` checkpoint).
        device: where to put the model.
        strict: require the state dict keys to match the rebuilt model exactly.

    Returns:
        The model, whose ``model.cfg`` carries the class names, input size and mean/std used in
        training, and whose ``model.checkpoint`` holds the card (metrics, versions). An AGFN
        model saved with its batch graph off (``agfn_enabled: false`` in the card, the epochs
        before ``agfn.pretrain_epochs`` ended) comes back with it off.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a truncated, corrupted or foreign checkpoint, naming the file.
    """
    meta = read_card(path)
    state = read_weights(meta)
    model = build_from_card(meta)
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint weights of '{meta['_card_path']}' do not fit model "
            f"'{meta['model']['name']}': {err}"
        ) from None
    if "agfn_enabled" in meta and hasattr(model, "set_agfn_enabled"):
        # a checkpoint of an AGFN run's pre-training epochs was selected with the graph off
        model.set_agfn_enabled(meta["agfn_enabled"])
    model.checkpoint = {k: v for k, v in meta.items() if not k.startswith("_")}
    return model.to(device).eval()
