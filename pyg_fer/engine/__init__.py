"""Training engine: configs, the training/evaluation loops, checkpoints, reports, DDP."""

from pyg_fer.engine.agfn import coordinate_descent_step
from pyg_fer.engine.checkpoint import load_model, read_card, save_checkpoint
from pyg_fer.engine.config import Config, list_recipes, load_config
from pyg_fer.engine.evaluate import evaluate
from pyg_fer.engine.metrics import confusion_matrix, summarize_confusion
from pyg_fer.engine.publish import publish
from pyg_fer.engine.trainer import train

__all__ = [
    "Config",
    "confusion_matrix",
    "coordinate_descent_step",
    "evaluate",
    "list_recipes",
    "load_config",
    "load_model",
    "publish",
    "read_card",
    "save_checkpoint",
    "summarize_confusion",
    "train",
]
