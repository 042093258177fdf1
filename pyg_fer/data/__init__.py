"""Datasets, transforms and label noise.

Entry points: ``build_dataset``, ``build_transform``, ``SyntheticFER``.
"""

from pyg_fer.data.affectnet import AffectNet
from pyg_fer.data.base import FERDataset, load_rgb, read_name_list, to_rgb
from pyg_fer.data.build import build_dataset, list_datasets
from pyg_fer.data.classes import (
    AFFECTNET_CLASSES,
    FERPLUS_CLASSES,
    RAFDB_CLASSES,
    class_order,
)
from pyg_fer.data.ferplus import FERPlus, ferplus_votes_to_target
from pyg_fer.data.folder import ImageFolder
from pyg_fer.data.noise import add_label_noise
from pyg_fer.data.rafdb import RAFDB
from pyg_fer.data.samplers import class_balanced_sampler
from pyg_fer.data.synthetic import ACTION_UNITS, PROTOTYPES, SyntheticFER
from pyg_fer.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ToRGB, build_transform

__all__ = [
    "ACTION_UNITS",
    "AFFECTNET_CLASSES",
    "FERPLUS_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PROTOTYPES",
    "RAFDB",
    "RAFDB_CLASSES",
    "AffectNet",
    "FERDataset",
    "FERPlus",
    "ImageFolder",
    "SyntheticFER",
    "ToRGB",
    "add_label_noise",
    "build_dataset",
    "build_transform",
    "class_balanced_sampler",
    "class_order",
    "ferplus_votes_to_target",
    "list_datasets",
    "load_rgb",
    "to_rgb",
    "read_name_list",
]
