"""Shared builder plumbing: merge defaults with overrides and attach ``model.cfg``.

:func:`build_model_with_cfg` is the only place that writes ``model.cfg``: the trainer and the
checkpoint loader pass the data's class names and normalisation to the builder instead of
patching the config afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch.nn as nn

from pyg_fer.constants import IMAGENET_MEAN, IMAGENET_STD


def build_model_with_cfg(
    model_cls: Callable[..., nn.Module],
    name: str,
    default_args: Mapping[str, Any],
    kwargs: Mapping[str, Any],
) -> nn.Module:
    """Build ``model_cls(**dict(default_args, **kwargs))`` and attach its config as ``model.cfg``.

    The keywords ``class_names``, ``mean`` and ``std`` describe the data, not the network: they
    are taken out before the model is built and recorded beside its architecture.
    ``model.cfg`` holds

    - ``name``: the registry name;
    - ``kwargs``: the architecture, everything needed to rebuild the network with
      ``create_model(name, **cfg['kwargs'])`` (``weights`` is left out because a checkpoint
      carries its own; ``pretrained`` is recorded as the resolved entry name, and a checkpoint
      card keeps it among ``init_kwargs``, not replayed);
    - ``input_size`` ``[C, H, W]``, ``num_classes``;
    - the data metadata: ``class_names`` (list or ``None``), ``mean``, ``std`` (default:
      ImageNet's).

    Every value is JSON-serialisable.

    ``kwargs['pretrained']`` (a :class:`~pyg_fer.models.PretrainedWeights`, ``True`` or an
    entry name) makes the entry's card the defaults under ``kwargs`` and loads its verified
    weights after the model is built. Called through a builder directly, the builder's own
    defaults (``num_classes=7``) override the card; :func:`~pyg_fer.models.create_model` lets
    the card's win.

    Raises:
        ValueError: ``class_names`` does not have ``num_classes`` entries, ``mean``/``std`` do
            not have 3 values, or a keyword value cannot be stored as JSON.
    """
    kwargs = dict(kwargs)
    pretrained = kwargs.pop("pretrained", None)
    entry = None
    if pretrained is not None and pretrained is not False:
        from pyg_fer.models.pretrained import resolve_weights  # it imports the registry

        entry = resolve_weights(name, pretrained)
        kwargs = dict(entry.model_kwargs(), **kwargs)
    args: dict[str, Any] = dict(default_args, **kwargs)
    class_names: Sequence[str] | None = args.pop("class_names", None)
    mean, std = args.pop("mean", None), args.pop("std", None)  # tensors and arrays welcome
    mean = [float(v) for v in (IMAGENET_MEAN if mean is None else mean)]
    std = [float(v) for v in (IMAGENET_STD if std is None else std)]
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
    rebuild = {key: _jsonable(value) for key, value in args.items() if key != "weights"}
    if entry is not None:
        rebuild["pretrained"] = entry.name
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
        mean=mean,
        std=std,
        num_classes=num_classes,
        class_names=class_names,
    )
    if entry is not None:
        from pyg_fer.models.pretrained import load_pretrained

        load_pretrained(model, entry)
    return model


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value
