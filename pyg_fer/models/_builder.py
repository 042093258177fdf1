"""Shared builder plumbing: merge defaults with overrides and attach ``model.cfg``."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Builder arguments that describe the data rather than the network: kept in ``cfg``.
_DATA_KEYS = ("class_names", "mean", "std")


def build_model_with_cfg(
    model_cls: Callable[..., nn.Module],
    name: str,
    default_args: Mapping[str, Any],
    kwargs: Mapping[str, Any],
) -> nn.Module:
    """Build ``model_cls(**dict(default_args, **kwargs))`` and attach its config as ``model.cfg``.

    ``model.cfg`` holds ``name`` (registry name), ``kwargs`` (everything needed to rebuild the
    architecture with ``create_model(name, **cfg['kwargs'])``; ``weights`` is left out because
    a checkpoint carries its own), ``input_size`` ``(C, H, W)``, ``mean``, ``std``,
    ``num_classes`` and ``class_names`` (list or ``None``). Every value is JSON-serialisable.

    Raises:
        ValueError: ``class_names`` does not have ``num_classes`` entries, or a keyword value
            cannot be stored as JSON.
    """
    args: Dict[str, Any] = dict(default_args, **kwargs)
    class_names: Optional[Sequence[str]] = args.pop("class_names", None)
    mean = tuple(args.pop("mean", IMAGENET_MEAN))
    std = tuple(args.pop("std", IMAGENET_STD))
    num_classes = int(args.get("num_classes", 7))
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != num_classes:
            raise ValueError(
                f"class_names has {len(class_names)} entries {class_names} but "
                f"num_classes={num_classes}"
            )
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values each, got mean={mean}, std={std}")
    model = model_cls(**args)
    rebuild = {k: _jsonable(v) for k, v in args.items() if k != "weights"}
    rebuild.update(class_names=class_names, mean=list(mean), std=list(std))
    for key, value in rebuild.items():
        try:
            json.dumps(value)
        except TypeError as err:
            raise ValueError(
                f"model '{name}': keyword '{key}'={value!r} is not JSON-serialisable"
            ) from err
    img_size = int(args.get("img_size", 224))
    model.cfg = dict(
        name=name,
        kwargs=rebuild,
        input_size=[int(args.get("in_chans", 3)), img_size, img_size],
        mean=list(mean),
        std=list(std),
        num_classes=num_classes,
        class_names=class_names,
    )
    return model


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
