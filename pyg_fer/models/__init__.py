"""Registered models: ``create_model(name, **kwargs)`` and ``list_models()``."""

from pyg_fer.models._builder import build_model_with_cfg
from pyg_fer.models._registry import (
    create_model,
    is_model,
    list_models,
    model_entrypoint,
    register_model,
)

__all__ = [
    "build_model_with_cfg",
    "create_model",
    "is_model",
    "list_models",
    "model_entrypoint",
    "register_model",
]
from pyg_fer.models import agfn, face2nodes, resnet, vig  # noqa: E402,F401  (register builders)
