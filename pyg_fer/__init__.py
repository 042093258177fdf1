"""pyg-fer: a PyTorch Geometric-native model zoo for facial expression recognition."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models"]


def __getattr__(name: str) -> Any:
    # create_model / list_models load pyg_fer.models (torch, PyG) on first use, so that the
    # command line can set its warning filters before any dependency is imported.
    if name in ("create_model", "list_models"):
        from pyg_fer import models

        return getattr(models, name)
    raise AttributeError(f"module 'pyg_fer' has no attribute '{name}'")
