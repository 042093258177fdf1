"""Registered models: ``create_model(name, **kwargs)`` and ``list_models()``."""

from pyg_fer.models._builder import build_model_with_cfg
from pyg_fer.models.backbone import ResNetTrunk
from pyg_fer.models.weights import (
    LoadReport,
    load_backbone_weights,
    load_state_dict_file,
    map_state_dict_keys,
)
from pyg_fer.models._registry import (
    create_model,
    is_model,
    list_models,
    model_entrypoint,
    register_model,
)
from pyg_fer.models.pretrained import (
    PretrainedWeights,
    download_weights,
    get_weights,
    list_pretrained,
    register_weights,
    weights_cache_dir,
)

__all__ = [
    "BatchGraphFER",
    "Face2Nodes",
    "LoadReport",
    "PretrainedWeights",
    "ResNetFER",
    "ResNetTrunk",
    "build_model_with_cfg",
    "create_model",
    "download_weights",
    "get_weights",
    "is_model",
    "list_models",
    "list_pretrained",
    "load_backbone_weights",
    "load_state_dict_file",
    "map_state_dict_keys",
    "model_entrypoint",
    "register_model",
    "register_weights",
    "weights_cache_dir",
]
from pyg_fer.models import agfn, face2nodes, resnet, vig  # noqa: E402,F401  (register builders)
from pyg_fer.models.agfn import BatchGraphFER  # noqa: E402
from pyg_fer.models.face2nodes import Face2Nodes  # noqa: E402
from pyg_fer.models.resnet import ResNetFER  # noqa: E402
