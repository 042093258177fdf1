"""Publish a trained checkpoint in the layout a pretrained-weights registry entry points to.

:func:`publish` copies a run's ``best`` checkpoint into a folder as

- ``<name>.safetensors``: the weights, byte for byte (so the card's SHA-256 still holds);
- ``<name>.json``: its card, naming the new weights file;
- ``<name>.safetensors.sha256``: ``<hex>  <name>.safetensors``, for ``sha256sum -c``;
- ``<name>.entry.json``: the registry entry (:class:`~pyg_fer.models.PretrainedWeights`) to
  paste into the ``entries`` of ``pyg_fer/models/pretrained.json`` or to give to
  :func:`~pyg_fer.models.register_weights`.

Upload the ``.safetensors`` file (and, for people, the card) to where the entry's URL points.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pyg_fer._files import atomic_write_bytes, atomic_write_text, json_text
from pyg_fer.models.card import load_safetensors_bytes, read_card, weights_file
from pyg_fer.models.pretrained import PretrainedWeights, check_entry_name

__all__ = ["publish"]


def publish(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    license: str,  # noqa: A002 -- the registry's field name
    name: str | None = None,
    url_base: str | None = None,
    hf_hub_id: str | None = None,
    hf_revision: str = "main",
    command: str | None = None,
    description: str = "",
    default: bool = False,
) -> PretrainedWeights:
    """Write ``checkpoint`` (a run folder, card, weights file or stem) into ``out_dir``.

    Args:
        checkpoint: what :func:`~pyg_fer.engine.load_model` accepts; a run folder means its
            ``best`` checkpoint.
        out_dir: the folder to write (created when missing).
        license: licence of the weights (e.g. ``"MIT"``, or the training data's terms).
        name: entry name ``<model>.<tag>`` (default: ``<model>.<run folder name>``).
        url_base: the URL the folder will be served from (``https://...``); the entry's URL
            is ``<url_base>/<name>.safetensors``. Default, without ``hf_hub_id``: the
            ``file://`` URL of the written file, usable on this machine or a shared disk.
        hf_hub_id: publish for a Hugging Face Hub repository instead of a URL.
        hf_revision: the Hub revision. (default: ``"main"``)
        command: how the weights were trained and their accuracy measured (default: the
            run's ``config.yaml`` and the evaluation recorded in the card).
        description: one line for ``pyg-fer weights``.
        default: mark the entry as its model's ``pretrained=True`` choice.

    Returns:
        The entry (also written as ``<name>.entry.json``).

    Raises:
        FileNotFoundError, ValueError: a missing or corrupt checkpoint, an invalid name, both
            ``url_base`` and ``hf_hub_id``.
    """
    if url_base is not None and hf_hub_id is not None:
        raise ValueError(f"give url_base ({url_base!r}) or hf_hub_id ({hf_hub_id!r}), not both: "
                         "an entry is downloaded from one place")
    meta = read_card(checkpoint)
    card_path = Path(meta["_card_path"])
    weights = weights_file(meta)
    blob = weights.read_bytes()
    load_safetensors_bytes(blob, meta["weights_sha256"], f"checkpoint weights '{weights}'")
    model = meta["model"]["name"]
    if name is None:
        tag = re.sub(r"[^A-Za-z0-9_-]+", "_", card_path.parent.resolve().name) or "weights"
        name = f"{model}.{tag}"
    check_entry_name(name, f"entry name '{name}'")  # before anything is written
    out_dir = Path(out_dir)
    file_name = f"{name}.safetensors"
    card = {k: v for k, v in meta.items() if not k.startswith("_")}
    card["weights"] = file_name
    if hf_hub_id is not None:
        where: dict[str, Any] = dict(hf_hub_id=hf_hub_id, hf_revision=hf_revision)
    elif url_base is not None:
        where = dict(url=f"{url_base.rstrip('/')}/{file_name}")
    else:
        where = dict(url=(out_dir / file_name).resolve().as_uri())
    if command is None:
        data = (card.get("config") or {}).get("data") or {}
        run = card_path.parent.resolve()
        command = (f"pyg-fer train {run / 'config.yaml'} (best epoch {card.get('epoch')}); "
                   f"accuracy: that run's evaluation on {data.get('name')}/"
                   f"{data.get('eval_split')}, repeated by `pyg-fer eval {run / card_path.name}`")
    entry = PretrainedWeights(name=name, card=card, license=license, command=command,
                              size=len(blob), description=description, default=default,
                              **where)
    atomic_write_bytes(out_dir / file_name, blob)
    atomic_write_text(out_dir / f"{name}.json", json_text(card, indent=2))
    atomic_write_text(out_dir / f"{file_name}.sha256", f"{entry.sha256}  {file_name}\n")
    atomic_write_text(out_dir / f"{name}.entry.json", json_text(entry.to_dict(), indent=2))
    return entry
