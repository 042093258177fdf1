"""Typed training configuration: nested dataclasses loaded from YAML recipes.

A recipe is a YAML file with the sections of :class:`Config` (``model``, ``data``, ``optim``,
``schedule``, ``train``, ``output``, ``distributed``, ``agfn``). Recipes shipped with the package
live in ``pyg_fer/configs/`` and are addressed by their stem (``synthetic_face2nodes``); any other
path is read from disk. Command-line overrides use dotted keys (``optim.lr=0.01``) whose values
are parsed as YAML scalars (``true``, ``1e-3``, ``[1, 2]``, ``null``).

Validation is strict: an unknown key, a value of the wrong type, or a model or dataset name that
does not exist raises a :class:`ValueError` naming it and listing the valid choices.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from pyg_fer.data import list_datasets
from pyg_fer.engine.checkpoint import atomic_write_bytes
from pyg_fer.models import is_model, list_models

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema numbers and no duplicate keys.

    YAML 1.1 (PyYAML's default) reads ``1e-3`` as a string and ``0042`` as octal 34; in YAML
    1.2, as here, they are the float 0.001 and the int 42 (``0o17`` / ``0x1f`` spell octal and
    hex). Recipe files and command-line overrides are read by this one loader, so a value means
    the same wherever it is written; a quoted value (``'001'``) stays a string.
    """


class _RecipeDumper(yaml.SafeDumper):
    """Writes what :class:`_RecipeLoader` reads back unchanged: it quotes a string such as
    ``'1e3'`` that the loader would read as a number."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_RESOLVERS = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YAML12_NUMBERS = [
    (_INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (_FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), "-+.0123456789"),
]
for _cls in (_RecipeLoader, _RecipeDumper):
    _cls.yaml_implicit_resolvers = copy.deepcopy(_RESOLVERS)
    for _tag, _regexp, _first in _YAML12_NUMBERS:  # ints first: the first match wins
        _cls.add_implicit_resolver(_tag, _regexp, list(_first))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            continue  # construct_mapping refuses it with its own error
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


_RecipeLoader.add_constructor(_INT, _construct_int)
_RecipeLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 (a SafeLoader subclass)


@dataclass
class ModelConfig:
    """Which registered model to build.

    Attributes:
        name: registry name passed to :func:`pyg_fer.create_model`.
        kwargs: keyword arguments of the builder (``num_classes`` is filled in from the data;
            ``weights: PATH`` loads pre-trained weights in the ``_pretrained`` recipes).
    """

    name: str = "face2nodes"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Datasets and transforms.

    Attributes:
        name: dataset name for :func:`pyg_fer.data.build_dataset`.
        root: dataset root folder (``None`` for the synthetic set).
        train_split: split used for training.
        eval_split: split used for evaluation each epoch and for the final report.
        img_size: side of the square network input.
        recipe: augmentation recipe of :func:`pyg_fer.data.build_transform`.
        mean: normalisation mean (``None``: the transform's default, ImageNet).
        std: normalisation std (``None``: the transform's default, ImageNet).
        options: keyword options for both splits' ``build_dataset`` call.
        train_options: extra options for the training split only (e.g. ``num_samples``).
        eval_options: extra options for the evaluation split only.
        num_workers: DataLoader worker processes.
        label_noise: fraction of training labels replaced by a different class (AGFN §4.3).
        label_noise_seed: seed of the label noise.
    """

    name: str = "synthetic"
    root: str | None = None
    train_split: str = "train"
    eval_split: str = "test"
    img_size: int = 224
    recipe: str = "face2nodes"
    mean: list[float] | None = None
    std: list[float] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)
    eval_options: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0
    label_noise: float = 0.0
    label_noise_seed: int = 0


@dataclass
class OptimConfig:
    """Optimiser of the network weights (Face2Nodes §4.2: Adam, lr 1e-3, weight decay 1e-4).

    Attributes:
        name: ``'adam'``, ``'adamw'`` or ``'sgd'``.
        lr: learning rate (AGFN's γ1 in AGFN mode).
        weight_decay: L2 penalty (decoupled for ``adamw``).
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        betas: Adam betas.
    """

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, stepped once per iteration.

    Attributes:
        name: ``'cosine'`` (annealing to ``min_lr`` over the run), ``'step'`` or ``'constant'``.
        warmup_epochs: linear warm-up length (may be fractional).
        min_lr: final learning rate of the cosine schedule.
        step_epochs: epochs between decays of the ``'step'`` schedule.
        gamma: decay factor of the ``'step'`` schedule.
    """

    name: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    step_epochs: int = 30
    gamma: float = 0.1


@dataclass
class TrainConfig:
    """Training loop.

    Attributes:
        epochs: number of epochs (Face2Nodes §4.2: 300).
        batch_size: global mini-batch size, split over processes in distributed runs (64).
        eval_batch_size: evaluation batch size (``None``: ``batch_size``).
        seed: seed of every random generator (Python, NumPy, torch, the sampler).
        label_smoothing: ξ of Face2Nodes Eq. 12 (0.1).
        amp: mixed precision (autocast, see ``amp_dtype``); used on CUDA only.
        amp_dtype: ``'float16'`` (with gradient scaling, which reads one value back to the
            host per step) or ``'bfloat16'`` (float32's exponent range: no scaling, no
            read-back; needs a GPU with bfloat16 arithmetic, e.g. Ampere or later).
        channels_last: channels-last memory format; used on CUDA only.
        compile: ``torch.compile`` the model for the training steps: ``None`` (off),
            ``'default'``, ``'reduce-overhead'`` (CUDA graphs), ``'max-autotune'`` or
            ``'max-autotune-no-cudagraphs'``. Evaluation and checkpoints use the model itself.
            Not with ``agfn.enabled``.
        grad_clip: clip the global gradient norm to this value (``None``: off).
        device: ``'auto'`` (CUDA when available), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        deterministic: ask torch for deterministic algorithms.
        eval_every: evaluate every this many epochs (and always after the last one).
        progress: show a tqdm bar per epoch.
        num_threads: torch intra-op threads (``None``: torch's default).
        best_metric: eval metric that selects the best checkpoint (``'overall_acc'`` or
            ``'mean_class_acc'``).
    """

    epochs: int = 300
    batch_size: int = 64
    eval_batch_size: int | None = None
    seed: int = 0
    label_smoothing: float = 0.1
    amp: bool = True
    amp_dtype: str = "float16"
    channels_last: bool = True
    compile: str | None = None
    grad_clip: float | None = None
    device: str = "auto"
    deterministic: bool = False
    eval_every: int = 1
    progress: bool = True
    num_threads: int | None = None
    best_metric: str = "overall_acc"


@dataclass
class OutputConfig:
    """Where a run writes.

    Attributes:
        dir: parent folder of run folders.
        name: run folder name (``None``: derived from the recipe's name).
        tsne: add a t-SNE plot of ``forward_features`` to the final report.
        overwrite: start afresh in an existing run folder (otherwise that is an error unless
            resuming).
    """

    dir: str = "runs"
    name: str | None = None
    tsne: bool = False
    overwrite: bool = False


@dataclass
class DistributedConfig:
    """Distributed data-parallel training.

    Attributes:
        backend: ``'auto'`` (NCCL on CUDA, gloo otherwise), ``'gloo'`` or ``'nccl'``.
        sync_bn: convert BatchNorm layers to SyncBatchNorm.
        nproc: processes to spawn on this machine (``1``: none; ``torchrun`` sets its own).
    """

    backend: str = "auto"
    sync_bn: bool = False
    nproc: int = 1


@dataclass
class AGFNConfig:
    """AGFN coordinate-descent mode (AGFN §3.3).

    Attributes:
        enabled: alternate a network step (lr γ1 = ``optim.lr``) and a graph step on the
            model's ``graph_parameters()`` (α, β) with lr γ2 = ``graph_lr``.
        graph_lr: γ2 (paper: 0.001).
        graph_optimizer: ``'sgd'`` (plain gradient step, Eq. 11) or ``'adam'``.
        graph_step: ``'fresh'`` (α, β step on a new forward pass at the updated W — Gauss–Seidel
            coordinate descent) or ``'shared'`` (both steps from one backward pass).
        pretrain_epochs: epochs of the baseline (AGFN switched off) before AGFN is inserted.
        loss: ``'mse'`` (Eq. 7, squared error between softmax scores and one-hot labels) or
            ``'ce'`` (cross-entropy with ``train.label_smoothing``).
        sample_average: with ``S > 1`` graphs drawn per step (the model's ``num_samples``),
            ``'loss'`` averages the S losses (Eq. 10) and ``'output'`` takes the loss of the
            averaged outputs.
        global_graph: under DDP, build the AGFN graph over the global batch (every process's
            samples) for models that offer ``set_global_graph(bool)``; ``false``: one graph
            per process. No effect in a single process.
    """

    enabled: bool = False
    graph_lr: float = 1e-3
    graph_optimizer: str = "sgd"
    graph_step: str = "fresh"
    pretrain_epochs: int = 0
    loss: str = "mse"
    sample_average: str = "loss"
    global_graph: bool = True


@dataclass
class Config:
    """A complete training recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    agfn: AGFNConfig = field(default_factory=AGFNConfig)

    def to_dict(self) -> dict[str, Any]:
        """A plain, YAML-serialisable copy."""
        return dataclasses.asdict(self)


_CHOICES = {
    "optim.name": ("adam", "adamw", "sgd"),
    "schedule.name": ("cosine", "step", "constant"),
    "distributed.backend": ("auto", "gloo", "nccl"),
    "agfn.graph_optimizer": ("sgd", "adam"),
    "agfn.graph_step": ("fresh", "shared"),
    "agfn.loss": ("mse", "ce"),
    "agfn.sample_average": ("loss", "output"),
    "train.best_metric": ("overall_acc", "mean_class_acc"),
    "train.amp_dtype": ("float16", "bfloat16"),
    "train.compile": (None, "default", "reduce-overhead", "max-autotune",
                      "max-autotune-no-cudagraphs"),
}
#: ``train.compile`` modes that capture CUDA graphs.
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")


def list_recipes() -> list[str]:
    """Names of the recipe files shipped in ``pyg_fer/configs/``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to floats)."""
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_value(value, inner, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key '{key}' must be a list, got {value!r}")
        (inner,) = typing.get_args(tp)
        return [_check_value(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"config key '{key}' must be a mapping, got {value!r}")
        return copy.deepcopy(dict(value))
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key '{key}' must be a float, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"config key '{key}' must be a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key '{key}' must be an int, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            hint = ""
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                # YAML reads an unquoted 08 or 1e-3 as a number (files written before pyg-fer
                # quoted such strings hold them unquoted)
                hint = "; quote it in YAML to keep it a string, e.g. '08'"
            raise ValueError(f"config key '{key}' must be a string, got {value!r}{hint}")
        return value
    raise TypeError(f"unsupported annotation {_type_name(tp)} for '{key}'")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"config section '{prefix}' must be a mapping, got {data!r}")  # noqa: TRY004
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    out = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            where = f"section '{prefix}'" if prefix else "the top level"
            raise ValueError(
                f"unknown config key '{full}'; valid keys in {where}: {', '.join(names)}"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            out[key] = _build(tp, value, full)
        else:
            out[key] = _check_value(value, tp, full)
    return cls(**out)


def config_from_dict(data: Mapping[str, Any] | None) -> Config:
    """Build and validate a :class:`Config` from a nested mapping.

    Raises:
        ValueError: on an unknown key, a wrong type, an invalid choice, or an unknown model or
            dataset name.
    """
    cfg = _build(Config, data, "")
    validate_config(cfg)
    return cfg


def validate_config(cfg: Config) -> None:
    """Check choices, ranges, and the model and dataset names of ``cfg``."""
    for key, choices in _CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in choices:
            valid = ", ".join("null" if c is None else c for c in choices)
            raise ValueError(f"config key '{key}' is {value!r}; valid: {valid}")
    if cfg.train.compile is not None and cfg.agfn.enabled:
        raise ValueError("config key 'train.compile' is not supported with 'agfn.enabled' "
                         "(coordinate descent runs two forwards per step and switches the "
                         "graph on and off); set train.compile: null")
    if not is_model(cfg.model.name):
        raise ValueError(
            f"config key 'model.name': unknown model '{cfg.model.name}'; registered models: "
            f"{', '.join(list_models())}"
        )
    datasets = list_datasets()
    if cfg.data.name not in datasets:
        raise ValueError(
            f"config key 'data.name': unknown dataset '{cfg.data.name}'; valid: "
            f"{', '.join(datasets)}"
        )
    positive = {
        "train.epochs": cfg.train.epochs,
        "train.batch_size": cfg.train.batch_size,
        "train.eval_every": cfg.train.eval_every,
        "data.img_size": cfg.data.img_size,
        "distributed.nproc": cfg.distributed.nproc,
    }
    for key, value in positive.items():
        if value < 1:
            raise ValueError(f"config key '{key}' must be >= 1, got {value}")
    if not 0.0 <= cfg.data.label_noise < 1.0:
        raise ValueError(f"config key 'data.label_noise' must be in [0, 1), got "
                         f"{cfg.data.label_noise}")
    if not 0.0 <= cfg.train.label_smoothing < 1.0:
        raise ValueError(f"config key 'train.label_smoothing' must be in [0, 1), got "
                         f"{cfg.train.label_smoothing}")
    if cfg.optim.lr <= 0 or cfg.agfn.graph_lr <= 0:
        raise ValueError("config keys 'optim.lr' and 'agfn.graph_lr' must be > 0")
    if cfg.agfn.pretrain_epochs < 0:
        raise ValueError(f"config key 'agfn.pretrain_epochs' must be >= 0, got "
                         f"{cfg.agfn.pretrain_epochs}")
    ranges = [  # (key, value, holds, what it must be)
        ("train.grad_clip", cfg.train.grad_clip,
         cfg.train.grad_clip is None or cfg.train.grad_clip > 0, "> 0, or null for no clipping"),
        ("train.eval_batch_size", cfg.train.eval_batch_size,
         cfg.train.eval_batch_size is None or cfg.train.eval_batch_size >= 1,
         ">= 1, or null for train.batch_size"),
        ("data.num_workers", cfg.data.num_workers, cfg.data.num_workers >= 0, ">= 0"),
        ("train.seed", cfg.train.seed, cfg.train.seed >= 0, ">= 0"),
        ("data.label_noise_seed", cfg.data.label_noise_seed, cfg.data.label_noise_seed >= 0,
         ">= 0"),
        ("optim.weight_decay", cfg.optim.weight_decay, cfg.optim.weight_decay >= 0, ">= 0"),
        ("optim.momentum", cfg.optim.momentum, 0 <= cfg.optim.momentum < 1, "in [0, 1)"),
        ("optim.betas", cfg.optim.betas,
         len(cfg.optim.betas) == 2 and all(0 <= b < 1 for b in cfg.optim.betas),
         "two numbers in [0, 1)"),
        ("schedule.warmup_epochs", cfg.schedule.warmup_epochs, cfg.schedule.warmup_epochs >= 0,
         ">= 0"),
        ("schedule.min_lr", cfg.schedule.min_lr, 0 <= cfg.schedule.min_lr <= cfg.optim.lr,
         f"in [0, optim.lr = {cfg.optim.lr}]"),
        ("schedule.step_epochs", cfg.schedule.step_epochs, cfg.schedule.step_epochs >= 1,
         ">= 1"),
        ("schedule.gamma", cfg.schedule.gamma, 0 < cfg.schedule.gamma <= 1, "in (0, 1]"),
    ]
    for key, value, holds, what in ranges:
        if not holds:
            raise ValueError(f"config key '{key}' must be {what}, got {value!r}")


_OVERRIDE = re.compile(r"^\s*[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\s*=")


def is_override(item: str) -> bool:
    """Whether a command-line item is a ``key=value`` override: a dotted name, then ``=``
    (``runs/lr=0.01/config.yaml`` is not one)."""
    return _OVERRIDE.match(item) is not None


def _parse_override(item: str) -> tuple[list[str], Any]:
    """``'optim.lr=1e-3'`` → ``(['optim', 'lr'], 0.001)``."""
    if "=" not in item:
        raise ValueError(f"override '{item}' is not of the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"override '{item}' has an empty key")
    try:
        value = _load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ValueError(f"override '{item}': cannot parse value {raw!r}: {err}") from None
    return key.split("."), value


def _set_path(data: dict[str, Any], parts: list[str], value: Any, item: str) -> None:
    """Set ``data[p0][p1]...[pn] = value``, creating mappings on the way; the value replaces
    whatever was there (a mapping value too: ``model.kwargs={}`` empties the kwargs)."""
    node = data
    for i, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(  # noqa: TRY004
                f"override '{item}': '{'.'.join(parts[:i + 1])}' is not a mapping")
    node[parts[-1]] = copy.deepcopy(value)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``['optim.lr=0.01', 'train.epochs=5']`` into a nested mapping.

    Values are YAML scalars or flow collections: ``true``, ``1e-3``, ``[0.5, 0.5]``, ``null``.
    """
    nested: dict[str, Any] = {}
    for item in items:
        parts, value = _parse_override(item)
        try:
            _set_path(nested, parts, value, item)
        except ValueError:
            raise ValueError(f"override '{item}' conflicts with an earlier override") from None
    return nested


def apply_overrides(data: Mapping[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """Apply dotted ``key=value`` overrides to a copy of ``data``, in order.

    Each override sets one path: ``model.kwargs.depth=4`` changes one key and keeps the others,
    ``model.kwargs={img_size: 48}`` replaces the whole mapping.
    """
    out = copy.deepcopy(dict(data))
    for item in items:
        _set_path(out, *_parse_override(item), item)
    return out


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base`` (mappings merge, the rest replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_recipe(source: str | Path) -> Path:
    """Path of a recipe given by a shipped name (``'synthetic_face2nodes'``) or a file path."""
    path = Path(source)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml"):
        what = "is a directory" if path.exists() else "does not exist"
        raise FileNotFoundError(f"config file '{path}' {what}")
    shipped = CONFIG_DIR / f"{source}.yaml"
    if shipped.is_file():  # a shipped name wins over a folder of that name (e.g. its run folder)
        return shipped
    folder = f"'{path}' is a directory, " if path.is_dir() else ""
    raise ValueError(
        f"unknown recipe '{source}': {folder}not a file, and not one of the shipped recipes: "
        f"{', '.join(list_recipes())}"
    )


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, naming the file (and line) on a syntax error."""
    path = Path(path)
    try:
        data = _load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"config file '{path}': not UTF-8 text ({err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"config file '{path}'{where}: invalid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(  # noqa: TRY004
            f"config file '{path}' must hold a mapping, got {type(data).__name__}")
    return data


def load_config(
    source: str | Path | Mapping[str, Any] | Config | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> Config:
    """Load a recipe and apply overrides.

    Args:
        source: shipped recipe name, YAML path, mapping, :class:`Config`, or ``None`` (defaults).
        overrides: dotted ``key=value`` strings, applied in order (each sets one path and
            replaces what was there, see :func:`apply_overrides`), or a nested mapping merged
            on top (mappings merge recursively).

    Returns:
        The validated :class:`Config`. Errors name the file and key at fault.
    """
    if isinstance(source, Config):
        data: dict[str, Any] = source.to_dict()
    elif isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
    elif source is None:
        data = {}
    else:
        path = resolve_recipe(source)
        # an empty section (`output:` with nothing under it) is an empty mapping
        data = {k: ({} if v is None else v) for k, v in read_yaml(path).items()}
        try:
            _build(Config, data, "")
        except ValueError as err:
            raise ValueError(f"config file '{path}': {err}") from None
        if data.get("output", {}).get("name") is None:
            data = merge(data, {"output": {"name": path.stem}})
    if isinstance(overrides, Mapping):
        data = merge(data, overrides)
    else:
        data = apply_overrides(data, overrides)
    try:
        return config_from_dict(data)
    except ValueError as err:
        if isinstance(source, (str, Path)):
            with_overrides = " with the overrides" if overrides else ""
            raise ValueError(f"config file '{path}'{with_overrides}: {err}") from None
        raise


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML (atomically)."""
    text = yaml.dump(cfg.to_dict(), Dumper=_RecipeDumper, sort_keys=False)
    atomic_write_bytes(Path(path), text.encode())
