"""pyg-fer's config loader beside OmegaConf structured configs over the same dataclasses.

Runs the cases ``tests/engine/test_config.py`` pins (unknown key, wrong types, an override below
a scalar, a section that is not a mapping, an invalid choice) and a few parsing cases through
both, printing each outcome, then times a load with two overrides. The findings and the
decision are in docs/design.md ("Hand-written config loader, not OmegaConf").

Needs ``pip install omegaconf`` (not a pyg-fer dependency).
Usage: ``python benchmarks/config_vs_omegaconf.py``
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pyg_fer.engine.config import Config, load_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "engine"))
import _engine_tiny  # noqa: E402, F401  (registers the tiny model the recipes name)

BASE = {"model": {"name": "_tiny_test_mlp"}}
CASES = [
    ("unknown key", BASE, ["optim.lrr=0.1"]),
    ("int from text", BASE, ["train.epochs=many"]),
    ("bool from int", BASE, ["train.amp=3"]),
    ("float from bool", BASE, ["optim.lr=true"]),
    ("int from 3.7", BASE, ["train.epochs=3.7"]),
    ("YAML 1.1 float", BASE, ["optim.lr=1e-3"]),
    ("bool from yes", BASE, ["train.amp=yes"]),
    ("mapping value replaces", {"model": {"name": "_tiny_test_mlp", "kwargs": {"a": 1}}},
     ["model.kwargs={hidden: 32}"]),
    ("override below a scalar", BASE, ["train.epochs=3", "train.epochs.x=1"]),
    ("invalid choice", BASE, ["optim.name=rmsprop"]),
    ("section not a mapping", {"model": {"name": "_tiny_test_mlp"}, "optim": 3}, []),
]


def with_pyg_fer(base: Mapping[str, Any], overrides: list[str]) -> Config:
    return load_config(base, overrides)


def with_omegaconf(base: Mapping[str, Any], overrides: list[str]) -> Config:
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(OmegaConf.structured(Config), base,
                             OmegaConf.from_dotlist(overrides))
    return OmegaConf.to_object(merged)


def outcome(loader: Callable[..., Config], base: Mapping[str, Any], overrides: list[str]) -> str:
    try:
        cfg = loader(base, overrides)
    except Exception as err:  # noqa: BLE001 -- report whatever each library raises
        return f"{type(err).__name__}: {err}".replace("\n", " | ")
    return (f"accepted: optim.lr={cfg.optim.lr} train.amp={cfg.train.amp} "
            f"train.epochs={cfg.train.epochs} model.kwargs={cfg.model.kwargs}")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        sys.exit("config_vs_omegaconf.py compares with OmegaConf: pip install omegaconf (not a "
                 "pyg-fer dependency)")
    for label, base, overrides in CASES:
        print(f"## {label}: {overrides or base}")
        for name, loader in (("pyg-fer", with_pyg_fer), ("omegaconf", with_omegaconf)):
            print(f"  {name:9s} {outcome(loader, base, overrides)}")
    items = ["optim.lr=0.01", "train.epochs=5"]
    for name, loader in (("pyg-fer", with_pyg_fer), ("omegaconf", with_omegaconf)):
        best = min(timeit.repeat(lambda loader=loader: loader(BASE, items), number=20,
                                 repeat=3)) / 20
        print(f"load + 2 overrides, {name}: {1e3 * best:.2f} ms")


if __name__ == "__main__":
    main()
