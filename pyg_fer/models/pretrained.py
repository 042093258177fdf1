"""Pretrained weights by name: a registry of checkpoints, a verified download cache, loading.

Each entry (:class:`PretrainedWeights`) is named ``<model>.<tag>`` as in timm and holds where
the weights file lives (an ``https://`` or ``file://`` URL, or a Hugging Face Hub repository),
its checkpoint *card* — the same JSON card a training run writes next to ``best.safetensors``
(:mod:`pyg_fer.models.card`): registry name and architecture kwargs, class names, mean/std,
input size, the training recipe, metrics and the weights' SHA-256 — the licence of the
weights, and the command that trained and measured them.

``create_model("face2nodes", pretrained="face2nodes.<tag>")`` (or ``pretrained=True`` for the
model's default entry) builds the model the card describes and loads the weights:

1. the file is looked up in the cache, ``$PYG_FER_HOME/weights`` (default
   ``$XDG_CACHE_HOME/pyg_fer`` or ``~/.cache/pyg_fer``), as ``<name>-<sha256[:8]>.safetensors``;
2. when missing, it is downloaded (with a progress bar) into a temporary file in the cache
   folder, its SHA-256 is compared with the card's, and only a matching file is moved into
   place (``os.replace``); a failed, interrupted (an exception, Ctrl-C, or SIGTERM to the
   ``pyg-fer`` command) or mismatched download leaves nothing behind;
3. with ``PYG_FER_OFFLINE=1`` nothing is downloaded: a missing file is an error that says what
   to download and where to put it;
4. the bytes are hashed again and parsed as safetensors (never unpickled) before loading.

The cache also holds the entry's card as ``<name>-<sha256[:8]>.json``, so a cached entry is an
ordinary checkpoint: ``load_model``, ``pyg-fer eval`` and ``pyg-fer predict`` read it.

Entries shipped with pyg-fer are the ``entries`` of ``pyg_fer/models/pretrained.json``;
the entry files named in ``$PYG_FER_WEIGHTS`` (``os.pathsep``-separated, like ``PATH``) are
registered beside them in every process, so the command line (and each DDP process) sees them;
:func:`register_weights` adds more at run time (an entry, its dict, or a JSON file of them),
e.g. the ``entry.json`` that ``pyg-fer publish`` writes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from torch import nn

from pyg_fer._files import atomic_path, atomic_write_text, json_text, sha256_file
from pyg_fer.models.card import card_model_kwargs, check_card, load_safetensors_bytes

__all__ = [
    "PretrainedWeights",
    "download_weights",
    "get_weights",
    "is_cached",
    "list_pretrained",
    "load_pretrained",
    "register_weights",
    "resolve_weights",
    "weights_cache_dir",
]

#: Environment variable naming pyg-fer's cache root (weights go to ``$PYG_FER_HOME/weights``).
ENV_HOME = "PYG_FER_HOME"
#: Environment variable that, set to ``1``/``true``/``yes``, forbids downloads.
ENV_OFFLINE = "PYG_FER_OFFLINE"
#: Environment variable listing more registry files (``os.pathsep``-separated), e.g. the
#: ``entry.json`` of ``pyg-fer publish``: registered with the shipped entries.
ENV_ENTRIES = "PYG_FER_WEIGHTS"
#: The registry file shipped with pyg-fer.
SHIPPED = Path(__file__).with_name("pretrained.json")

_URL_SCHEMES = ("https", "file")
_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def check_entry_name(name: str, where: str) -> str:
    """Check a weights entry's name, ``<model>.<tag>``; return the model part.

    Raises:
        ValueError: naming ``where``, if the name has no tag or holds characters other than
            letters, digits, ``_``, ``-`` and (in the tag) single ``.``.
    """
    model, _, tag = name.partition(".")
    if not model or not tag:
        raise ValueError(f"{where}: the name must be '<model>.<tag>'")
    if not _NAME_PART.match(model) or not _NAME_PART.match(tag) or ".." in tag:
        # the name becomes a file name in the cache: no separators, no '..'
        raise ValueError(f"{where}: model and tag may hold only letters, digits, '_', '-' "
                         "and (in the tag) single '.'")
    return model


@dataclass(frozen=True)
class PretrainedWeights:
    """One registry entry: where a checkpoint lives, its card, its licence.

    Args:
        name (str): ``<model>.<tag>``, e.g. ``face2nodes.rafdb_224``; ``<model>`` is the
            registered model the card describes.
        card (dict): the checkpoint card (``best.json`` of a run: ``format``, ``weights``,
            ``weights_sha256``, ``model`` with name, kwargs, class names, input size, mean/std,
            and ``metrics``, ``config``, versions).
        license (str): licence of the weights (an SPDX identifier or the dataset's terms).
        url (str, optional): ``https://`` or ``file://`` URL of the ``.safetensors`` file.
        hf_hub_id (str, optional): Hugging Face Hub repository holding the file named by the
            card's ``weights`` field (needs ``pip install "pyg-fer[hub]"``).
        hf_revision (str): branch, tag or commit on the Hub. (default: ``"main"``)
        command (str): the commands that trained the weights and measured their accuracy.
        size (int, optional): size of the weights file in bytes.
        description (str): one line shown by ``pyg-fer weights``.
        default (bool): the entry ``pretrained=True`` picks for its model.

    Exactly one of ``url`` and ``hf_hub_id`` is given. The SHA-256 is the card's
    ``weights_sha256``: the card is the one owner of that fact.
    """

    name: str
    card: Mapping[str, Any]
    license: str
    url: str | None = None
    hf_hub_id: str | None = None
    hf_revision: str = "main"
    command: str = ""
    size: int | None = None
    description: str = ""
    default: bool = False

    def __post_init__(self) -> None:
        where = f"weights entry '{self.name}'"
        model = check_entry_name(self.name, where)
        check_card(dict(self.card), where)
        if self.card["model"]["name"] != model:
            raise ValueError(f"{where}: its card describes model '{self.card['model']['name']}' "
                             f"but the name says '{model}'")
        if not _SHA256.match(str(self.card["weights_sha256"])):
            raise ValueError(f"{where}: weights_sha256 {self.card['weights_sha256']!r} is not "
                             "64 lower-case hex digits")
        if (self.url is None) == (self.hf_hub_id is None):
            raise ValueError(f"{where}: give exactly one of 'url' and 'hf_hub_id'")
        if self.url is not None:
            parsed = urllib.parse.urlparse(self.url)
            if parsed.scheme not in _URL_SCHEMES:
                raise ValueError(f"{where}: url '{self.url}' must start with "
                                 f"{' or '.join(s + '://' for s in _URL_SCHEMES)}")
            if not parsed.path.endswith(".safetensors"):
                raise ValueError(f"{where}: url '{self.url}' must name a .safetensors file "
                                 "(pickled weights are never loaded)")
        if not str(self.card["weights"]).endswith(".safetensors"):
            raise ValueError(f"{where}: the card's weights file '{self.card['weights']}' is not "
                             "a .safetensors file")
        if not self.license:
            raise ValueError(f"{where}: the licence is empty")

    # -------------------------------------------------------------- facts read from the card
    @property
    def model(self) -> str:
        """The registered model these weights are for."""
        return self.card["model"]["name"]

    @property
    def sha256(self) -> str:
        """SHA-256 of the weights file (the card's ``weights_sha256``)."""
        return self.card["weights_sha256"]

    @property
    def filename(self) -> str:
        """Name of the weights file in the cache: ``<name>-<sha256[:8]>.safetensors``."""
        return f"{self.name}-{self.sha256[:8]}.safetensors"

    @property
    def source(self) -> str:
        """Where the file is downloaded from (a URL, or ``hf://<repo>/<file>@<revision>``)."""
        if self.url is not None:
            return self.url
        return f"hf://{self.hf_hub_id}/{self.card['weights']}@{self.hf_revision}"

    def model_kwargs(self) -> dict[str, Any]:
        """The builder keywords of the card (architecture, classes, mean/std)."""
        return card_model_kwargs(self.card)

    def accuracy(self) -> str:
        """The card's measured accuracy as one line (dataset/split, overall and mean class)."""
        metrics = self.card.get("metrics") or {}
        data = (self.card.get("config") or {}).get("data") or {}
        if "eval_acc" not in metrics:
            return "not measured"
        where = f"{data.get('name', '?')}/{data.get('eval_split', '?')}"
        text = f"{100 * metrics['eval_acc']:.1f}% on {where}"
        if "eval_mean_class_acc" in metrics:
            text += f" (mean class {100 * metrics['eval_mean_class_acc']:.1f}%)"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :func:`register_weights` accepts it back."""
        out = asdict(self)
        out["card"] = {k: v for k, v in dict(self.card).items() if not k.startswith("_")}
        return out


# ------------------------------------------------------------------------------- registry

_entries: dict[str, PretrainedWeights] = {}
_shipped_loaded = False
# The $PYG_FER_WEIGHTS value whose files are registered, and the names they registered.
_env_loaded: tuple[str, list[str]] = ("", [])


def _ensure_loaded() -> None:
    """Register the shipped entries once, and the files of ``$PYG_FER_WEIGHTS`` whenever its
    value changes (the previous value's entries are removed first)."""
    global _shipped_loaded, _env_loaded
    if not _shipped_loaded:
        _shipped_loaded = True
        register_weights(SHIPPED)
    value = os.environ.get(ENV_ENTRIES, "")
    if value == _env_loaded[0]:
        return
    for name in _env_loaded[1]:
        _entries.pop(name, None)
    _env_loaded = ("", [])
    names: list[str] = []
    for path in filter(None, value.split(os.pathsep)):
        try:
            names += [e.name for e in register_weights(path)]
        except ValueError as err:  # nothing of a bad value stays registered; asked again, it
            for name in names:     # raises again
                _entries.pop(name, None)
            raise ValueError(f"${ENV_ENTRIES}: {err}") from None
    _env_loaded = (value, names)


def register_weights(
    entry: PretrainedWeights | Mapping[str, Any] | str | Path,
) -> list[PretrainedWeights]:
    """Add entries to the registry.

    Args:
        entry: a :class:`PretrainedWeights`, its :meth:`~PretrainedWeights.to_dict`, or the
            path of a JSON file holding one entry dict or ``{"entries": [...]}`` (the shipped
            ``pretrained.json`` and the ``entry.json`` of ``pyg-fer publish``).

    Returns:
        The registered entries.

    Raises:
        ValueError: an invalid entry, an unknown model, or a name registered already.
    """
    if isinstance(entry, (str, Path)):
        path = Path(entry)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read weights registry file '{path}': {err}") from None
        items = data.get("entries") if isinstance(data, dict) and "entries" in data else [data]
        if not isinstance(items, list):
            raise ValueError(f"'{path}': 'entries' must be a list")
        try:
            return [r for item in items for r in register_weights(item)]
        except (TypeError, ValueError) as err:
            raise ValueError(f"'{path}': {err}") from None
    if isinstance(entry, Mapping):
        try:
            entry = PretrainedWeights(**entry)
        except TypeError as err:
            raise ValueError(f"weights entry {entry.get('name')!r}: {err}") from None
    from pyg_fer.models._registry import is_model

    if not is_model(entry.model):
        raise ValueError(f"weights entry '{entry.name}': model '{entry.model}' is not registered")
    if entry.name in _entries:
        raise ValueError(f"weights entry '{entry.name}' is already registered")
    _entries[entry.name] = entry
    return [entry]


def unregister_weights(name: str) -> None:
    """Remove an entry (tests and notebooks that register temporary entries)."""
    _entries.pop(name, None)


def list_pretrained(pattern: str = "*") -> list[str]:
    """Sorted names of the registered weights that match a shell-style ``pattern``."""
    _ensure_loaded()
    return sorted(n for n in _entries if fnmatch.fnmatch(n, pattern))


def get_weights(name: str) -> PretrainedWeights:
    """The entry registered as ``name``.

    Raises:
        ValueError: unknown name (the message lists the registered entries).
    """
    _ensure_loaded()
    if name not in _entries:
        raise ValueError(f"unknown pretrained weights '{name}'; registered: "
                         f"{', '.join(list_pretrained()) or '(none)'} (add an entry file "
                         f"with ${ENV_ENTRIES} or register_weights)")
    return _entries[name]


def resolve_weights(model: str, pretrained: bool | str | PretrainedWeights) -> PretrainedWeights:
    """The entry that ``create_model(model, pretrained=...)`` loads.

    Args:
        model: the registered model being built.
        pretrained: ``True`` (the model's default entry, or its only one), an entry name
            (``"face2nodes.tag"``), a tag of the model (``"tag"``) or an entry.

    Raises:
        ValueError: no such entry for this model; the message lists the model's entries (or
            all entries when it has none).
    """
    _ensure_loaded()
    if isinstance(pretrained, PretrainedWeights):
        entry = pretrained
    else:
        own = [e for e in _entries.values() if e.model == model]
        valid = ", ".join(sorted(e.name for e in own)) or \
            f"(none for '{model}'; all entries: {', '.join(list_pretrained()) or 'none'})"
        if pretrained is True:
            defaults = [e for e in own if e.default] or (own if len(own) == 1 else [])
            if len(defaults) != 1:
                raise ValueError(f"pretrained=True: model '{model}' has "
                                 f"{'no' if not own else 'no single default'} pretrained "
                                 f"weights; name one of: {valid}")
            return defaults[0]
        if not isinstance(pretrained, str):
            raise ValueError(f"pretrained must be True, an entry name or a PretrainedWeights, "
                             f"got {pretrained!r}")
        name = pretrained if "." in pretrained else f"{model}.{pretrained}"
        if name not in _entries:
            raise ValueError(f"unknown pretrained weights '{pretrained}' for model '{model}'; "
                             f"valid: {valid}")
        entry = _entries[name]
    if entry.model != model:
        raise ValueError(f"pretrained weights '{entry.name}' are for model '{entry.model}', "
                         f"not '{model}'")
    return entry


# ---------------------------------------------------------------------------------- cache


def weights_cache_dir() -> Path:
    """Where downloaded weights live: ``$PYG_FER_HOME/weights``, by default
    ``$XDG_CACHE_HOME/pyg_fer/weights`` or ``~/.cache/pyg_fer/weights``."""
    home = os.environ.get(ENV_HOME)
    if not home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        home = os.path.join(cache, "pyg_fer")
    return Path(home).expanduser() / "weights"


def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


def _entry(entry: PretrainedWeights | str) -> PretrainedWeights:
    return entry if isinstance(entry, PretrainedWeights) else get_weights(entry)


def cached_file(entry: PretrainedWeights | str) -> Path:
    """The path the weights file of ``entry`` has in the cache (whether there or not)."""
    return weights_cache_dir() / _entry(entry).filename


def is_cached(entry: PretrainedWeights | str) -> bool:
    """``True`` when the weights file of ``entry`` is in the cache (not re-hashed here)."""
    return cached_file(entry).is_file()


def _how_to_fetch(entry: PretrainedWeights) -> str:
    if entry.url is not None:
        return f"download {entry.url}"
    return (f"download '{entry.card['weights']}' of the Hugging Face repository "
            f"'{entry.hf_hub_id}' (revision {entry.hf_revision}), e.g. `huggingface-cli "
            f"download {entry.hf_hub_id} {entry.card['weights']} --revision {entry.hf_revision}`")


def download_weights(entry: PretrainedWeights | str, *, progress: bool = True) -> Path:
    """Make sure the weights of ``entry`` are in the cache, verified; return the card's path.

    The returned ``.json`` card sits next to the weights file, so the pair is a checkpoint
    that :func:`~pyg_fer.engine.load_model` and ``pyg-fer predict`` read.

    Raises:
        FileNotFoundError: offline (``PYG_FER_OFFLINE=1``) and not cached; the message says
            what to download and the path to save it as.
        ValueError: the cached or downloaded file does not have the entry's SHA-256 (the
            message names both hashes); nothing mismatched is left in the cache.
        OSError: the download failed (nothing is left in the cache).
        ImportError: a Hub entry without ``huggingface_hub`` installed.
    """
    entry = _entry(entry)
    target = cached_file(entry)
    if target.is_file():
        actual = sha256_file(target)
        if actual != entry.sha256:
            raise ValueError(
                f"cached weights '{target}' of '{entry.name}' have SHA-256 {actual}, expected "
                f"{entry.sha256} (corrupted or replaced file); delete it to download again")
    elif _offline():
        raise FileNotFoundError(
            f"{ENV_OFFLINE} is set and the weights '{entry.name}' are not in the cache: "
            f"{_how_to_fetch(entry)} and save it as {target} (SHA-256 {entry.sha256}), or "
            f"unset {ENV_OFFLINE} to download it")
    elif entry.url is not None:
        _fetch_url(entry, target, progress)
    else:
        _fetch_hub(entry, target, progress)
    card_path = target.with_suffix(".json")
    card = dict(entry.to_dict()["card"], weights=target.name)
    text = json_text(card, indent=2)
    if not card_path.is_file() or card_path.read_text() != text:
        atomic_write_text(card_path, text)
    return card_path


def _fetch_url(entry: PretrainedWeights, target: Path, progress: bool) -> None:
    try:
        response = urllib.request.urlopen(entry.url, timeout=60)  # noqa: S310 (scheme checked)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise OSError(f"cannot download '{entry.name}' from {entry.url}: {err}; to install it "
                      f"by hand, save the file as {target} (SHA-256 {entry.sha256})") from None
    with response:
        length = response.headers.get("Content-Length")
        _store_verified(response, int(length) if length else None, entry, target, progress,
                        entry.url)


def _fetch_hub(entry: PretrainedWeights, target: Path, progress: bool) -> None:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ImportError(
            f"weights '{entry.name}' are on the Hugging Face Hub ({entry.hf_hub_id}), which "
            "needs huggingface_hub: pip install \"pyg-fer[hub]\"; or "
            f"{_how_to_fetch(entry)} by hand and save it as {target} "
            f"(SHA-256 {entry.sha256})") from None
    local = Path(hf_hub_download(repo_id=entry.hf_hub_id, filename=entry.card["weights"],
                                 revision=entry.hf_revision))
    with open(local, "rb") as f:
        _store_verified(f, local.stat().st_size, entry, target, progress,
                        f"{entry.source} ({local})")


def _store_verified(stream: IO[bytes], total: int | None, entry: PretrainedWeights,
                    target: Path, progress: bool, source: str) -> None:
    """Copy ``stream`` into a temporary file beside ``target`` while hashing it; move it into
    place only when complete and matching the entry's SHA-256."""
    from tqdm import tqdm

    with atomic_path(target, suffix=".part") as tmp:
        digest, received = hashlib.sha256(), 0
        with open(tmp, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.name,
            disable=None if progress else True, leave=False,  # None: only on a terminal
        ) as bar:
            while chunk := stream.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise OSError(f"download of '{entry.name}' from {source} stopped after {received} "
                          f"of {total} bytes; nothing was kept in {target.parent}")
        actual = digest.hexdigest()
        if actual != entry.sha256:
            raise ValueError(
                f"weights '{entry.name}' downloaded from {source} have SHA-256 {actual}, "
                f"expected {entry.sha256}; the file was not kept in the cache")


def load_pretrained(model: nn.Module, entry: PretrainedWeights | str, *,
                    progress: bool = True) -> nn.Module:
    """Load the weights of ``entry`` into ``model`` (fetched and verified as in
    :func:`download_weights`; the bytes are hashed again before safetensors parses them).

    Raises:
        ValueError: the weights do not fit ``model`` (missing, unexpected or mis-shaped keys,
            named), or a hash mismatch.
    """
    entry = _entry(entry)
    download_weights(entry, progress=progress)
    target = cached_file(entry)
    state = load_safetensors_bytes(target.read_bytes(), entry.sha256,
                                   f"cached weights '{target}' of '{entry.name}'")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        cfg = getattr(model, "cfg", None) or {}
        card_kwargs = entry.model_kwargs()
        differ = {k: v for k, v in (cfg.get("kwargs") or {}).items()
                  if k in card_kwargs and card_kwargs[k] != v}
        hint = ""
        if differ:
            hint = (f" built with {differ} (the card says "
                    f"{ {k: card_kwargs[k] for k in differ} })")
        raise ValueError(
            f"pretrained weights '{entry.name}' do not fit the model{hint}: {err}"
        ) from None
    return model
