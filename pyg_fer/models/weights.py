"""Loading pre-trained weights from local files, without unpickling arbitrary objects.

FER repositories share the MS-Celeb-1M ResNet-18 as a torch checkpoint whose state dict sits
under ``'state_dict'`` with ``'module.'`` prefixes (from ``DataParallel``) and a face-identity
``fc`` head. :func:`load_backbone_weights` reads such a file with ``weights_only=True`` (or a
``.safetensors`` file), maps the keys onto a module and reports every missing, unexpected or
mis-shaped key by name. The ``best.safetensors`` of a pyg-fer ``resnet18_fer`` run (keys
``trunk.conv1.weight`` ..., ``fc.*``) loads the same way, so a trunk pre-trained with pyg-fer
(e.g. on SyntheticFER identities) initialises any model's trunk.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file
from torch import Tensor

__all__ = [
    "LoadReport",
    "load_state_dict_file",
    "map_state_dict_keys",
    "load_backbone_weights",
]

_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "net")
_PREFIXES = ("module.", "model.", "backbone.", "base.", "trunk.")


@dataclass
class LoadReport:
    """What :func:`load_backbone_weights` did: keys loaded, ignored, missing and unexpected."""

    path: str
    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.path}: loaded {len(self.loaded)} tensors, ignored {len(self.ignored)} "
            f"({', '.join(self.ignored) or '-'}), missing {len(self.missing)} "
            f"({', '.join(self.missing) or '-'}), unexpected {len(self.unexpected)} "
            f"({', '.join(self.unexpected) or '-'})"
        )


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``path`` safely.

    ``.safetensors`` files are read with :mod:`safetensors`; anything else with
    ``torch.load(..., weights_only=True)``, which refuses arbitrary pickled objects. A state
    dict nested under one of ``'state_dict'``, ``'model'``, ``'model_state_dict'`` or ``'net'``
    is unwrapped.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a folder, or the file cannot be read safely or holds no tensor
            state dict.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a weights file")
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            obj = load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"cannot read safetensors file {path}: {err}") from err
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, KeyError,
                ValueError, OSError) as err:  # KeyError: text whose first byte is an opcode
            raise ValueError(
                f"cannot load {path} with torch.load(weights_only=True) (only tensors and plain "
                f"containers are accepted, never arbitrary pickled objects): {err}"
            ) from err
    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path} holds no state dict (got {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: state dict entries that are not tensors: {bad[:10]}")
    return dict(obj)


def map_state_dict_keys(
    state_dict: Mapping[str, Tensor], prefixes: Iterable[str] = _PREFIXES
) -> dict[str, Tensor]:
    """Strip wrapper prefixes such as ``'module.'`` (``DataParallel``) from every key.

    The default prefixes are ``'module.'``, ``'model.'``, ``'backbone.'``, ``'base.'`` and
    ``'trunk.'`` (the trunk of pyg-fer's ``resnet18_fer`` and AGFN checkpoints).

    Prefixes are stripped repeatedly, so ``'module.backbone.conv1.weight'`` becomes
    ``'conv1.weight'``. Two keys that map to the same name raise :class:`ValueError`.
    """
    prefixes = tuple(prefixes)
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        new = key
        stripped = True
        while stripped:
            stripped = False
            for p in prefixes:
                if new.startswith(p):
                    new = new[len(p):]
                    stripped = True
        if new in out:
            raise ValueError(
                f"keys collide after stripping prefixes {prefixes}: '{key}' -> '{new}'"
            )
        out[new] = value
    return out


def load_backbone_weights(
    module: nn.Module,
    path: str | Path,
    ignore_prefixes: tuple[str, ...] = ("fc.", "classifier.", "head."),
    strict: bool = True,
) -> LoadReport:
    """Load a local checkpoint into a backbone, mapping keys and reporting mismatches.

    Args:
        module (torch.nn.Module): the backbone (e.g. a torchvision ResNet with ``fc`` removed).
        path (str or Path): ``.pth``/``.pt``/``.tar`` (``torch.load(weights_only=True)``) or
            ``.safetensors`` file.
        ignore_prefixes (tuple of str): checkpoint keys under these prefixes that the module
            lacks are expected (a classification head) and skipped.
            (default: ``("fc.", "classifier.", "head.")``)
        strict (bool): raise :class:`ValueError` when a module key is missing from the file or
            the file has keys the module does not; otherwise load what matches and return the
            report. (default: :obj:`True`)

    Returns:
        LoadReport: the loaded, ignored, missing and unexpected keys.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a folder.
        ValueError: unreadable file, a shape mismatch (always), or missing/unexpected keys
            when ``strict``; the message names the file and every offending key.
    """
    state = map_state_dict_keys(load_state_dict_file(path))
    own = module.state_dict()
    report = LoadReport(path=str(path))
    to_load: dict[str, Tensor] = {}
    mismatched = []
    for key, value in state.items():
        if key in own:
            if own[key].shape != value.shape:
                mismatched.append(
                    f"{key}: file {tuple(value.shape)} vs model {tuple(own[key].shape)}"
                )
            else:
                to_load[key] = value
                report.loaded.append(key)
        elif key.startswith(tuple(ignore_prefixes)):
            report.ignored.append(key)
        else:
            report.unexpected.append(key)
    # Old checkpoints predate BatchNorm's num_batches_tracked buffer; its absence is harmless.
    report.missing = [
        k for k in own if k not in to_load and not k.endswith("num_batches_tracked")
    ]
    if mismatched:
        raise ValueError(
            f"{path}: shape mismatch for {len(mismatched)} keys: {'; '.join(mismatched)}"
        )
    if strict and (report.missing or report.unexpected):
        raise ValueError(f"cannot load weights strictly: {report}")
    module.load_state_dict(to_load, strict=False)
    return report
