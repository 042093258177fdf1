"""Expression class names and the class orders of the public FER datasets.

Every dataset in :mod:`pyg_fer.data` names its classes with the same lower-case words, so a
model trained on one dataset reports the same ``class_names`` as one trained on another; only
the *order* (the integer a class maps to) differs, and it is always the dataset's own.
"""

from __future__ import annotations

#: RAF-DB basic: labels 1..7 in ``list_patition_label.txt`` map to indices 0..6.
RAFDB_CLASSES: list[str] = [
    "surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral",
]

#: FERPlus vote columns (``fer2013new.csv`` / ``label.csv``), emotions only.
FERPLUS_CLASSES: list[str] = [
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
]

#: FERPlus's seven-class protocol: contempt dropped, the other classes keep their order.
FERPLUS7_CLASSES: list[str] = FERPLUS_CLASSES[:7]

#: AffectNet expression codes 0..7 (codes 8..10 are None, Uncertain, No-Face and are dropped).
AFFECTNET_CLASSES: list[str] = [
    "neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt",
]

#: AffectNet's seven-class protocol: contempt (code 7) dropped.
AFFECTNET7_CLASSES: list[str] = AFFECTNET_CLASSES[:7]

CLASS_ORDERS: dict[str, list[str]] = {
    "rafdb": RAFDB_CLASSES,
    "ferplus": FERPLUS_CLASSES,
    "ferplus7": FERPLUS7_CLASSES,
    "affectnet": AFFECTNET_CLASSES,
    "affectnet7": AFFECTNET7_CLASSES,
}


def class_order(name: str) -> list[str]:
    """Return a copy of a named class order (``'rafdb'``, ``'ferplus'``, ``'ferplus7'``,
    ``'affectnet'``, ``'affectnet7'``).

    Raises:
        ValueError: if ``name`` is not a known class order.
    """
    if name not in CLASS_ORDERS:
        raise ValueError(f"unknown class order {name!r}; expected one of {sorted(CLASS_ORDERS)}")
    return list(CLASS_ORDERS[name])
