"""Model registry in the style of timm: one builder function per model name."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

import torch.nn as nn

_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator that registers a builder under its function name."""
    name = fn.__name__
    if name in _model_entrypoints:
        raise ValueError(f"model '{name}' is already registered")
    _model_entrypoints[name] = fn
    return fn


def list_models(pattern: str = "*", include_private: bool = False) -> list[str]:
    """Sorted names of the registered models that match a shell-style ``pattern``.

    Names starting with ``_`` are private (e.g. tiny models registered by tests) and are
    listed only with ``include_private=True``; ``create_model`` builds them either way.
    """
    return sorted(
        n for n in _model_entrypoints
        if fnmatch.fnmatch(n, pattern) and (include_private or not n.startswith("_"))
    )


def is_model(name: str) -> bool:
    """``True`` when ``name`` is a registered model (see :func:`list_models`)."""
    return name in _model_entrypoints


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The builder function registered under ``name``.

    Raises:
        ValueError: ``name`` is not registered (the message lists the registered names).
    """
    if name not in _model_entrypoints:
        raise ValueError(
            f"unknown model '{name}'; registered models: {', '.join(list_models())}"
        )
    return _model_entrypoints[name]


def create_model(name: str, pretrained: Any = None, **kwargs: Any) -> nn.Module:
    """Build a registered model; every keyword overrides the builder's default.

    Args:
        name: a registered model (:func:`list_models`).
        pretrained: ``None``/``False`` (random initialisation), ``True`` (the model's default
            entry of the weights registry), or an entry name such as ``"face2nodes.<tag>"``
            (or just ``"<tag>"``); see :func:`~pyg_fer.models.list_pretrained`. The entry's card
            gives the defaults (architecture, classes, mean/std) that ``kwargs`` override, and
            its verified weights are loaded (downloaded into the cache when missing).
        **kwargs: builder keywords; ``class_names`` without ``num_classes`` sets it to their
            number (with ``pretrained``, the entry's ``num_classes`` stands).
    """
    builder = model_entrypoint(name)
    if pretrained is None or pretrained is False:
        if kwargs.get("class_names") is not None and "num_classes" not in kwargs:
            kwargs["num_classes"] = len(kwargs["class_names"])  # the names say how many
        return builder(**kwargs)
    from pyg_fer.models.pretrained import resolve_weights  # the registry imports this module

    entry = resolve_weights(name, pretrained)
    return builder(**dict(entry.model_kwargs(), **kwargs), pretrained=entry)
