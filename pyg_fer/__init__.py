"""pyg-fer: a PyTorch Geometric-native model zoo for facial expression recognition."""

__version__ = "0.1.0"

from pyg_fer.models import create_model, list_models

__all__ = ["__version__", "create_model", "list_models"]
