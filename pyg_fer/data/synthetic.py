"""SyntheticFER: procedurally rendered faces whose expression is carried by FACS action units.

Each sample is drawn from its own random stream seeded by ``(seed, split, index)``, so an image
never depends on which other images were rendered, on the worker that renders it, or on the
dataset size. A sample is: an identity (face shape, skin, eyes, brows, nose, mouth, hair), an
expression (a prototype set of action units at a random intensity with per-AU jitter and a little
resting activity everywhere), a pose (roll, scale, shift, a little yaw), lighting, a cluttered
background and optional occlusion and grayscale. Geometry lives in a face frame (head half-width
about 1, y down) and is projected to pixels through the pose, then drawn with PIL at twice the
output size and box-filtered down.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pyg_fer._files import atomic_path
from pyg_fer.data.base import FERDataset
from pyg_fer.data.classes import class_order as _class_order

#: Action units rendered; ``12`` and ``14`` are split into left/right for unilateral contempt.
ACTION_UNITS: tuple[str, ...] = (
    "1", "2", "4", "5", "6", "7", "9", "10", "12L", "12R", "14L", "14R", "15", "20", "23", "26",
)

#: FACS prototypes (EMFACS): the action units each class activates.
PROTOTYPES: dict[str, tuple[str, ...]] = {
    "neutral": (),
    "happiness": ("6", "12L", "12R"),
    "sadness": ("1", "4", "15"),
    "surprise": ("1", "2", "5", "26"),
    "fear": ("1", "2", "4", "5", "20", "26"),
    "anger": ("4", "5", "7", "23"),
    "disgust": ("9", "10", "15"),
    "contempt": ("12", "14"),  # unilateral: one side, chosen per sample
}

#: The splits and their id in the random streams. ``'pretrain'`` is a third pool of people for
#: identity pre-training (the stand-in for MS-Celeb-1M), disjoint from ``'train'`` and ``'test'``.
_SPLITS = {"train": 0, "test": 1, "pretrain": 2}
# Identity ids come from disjoint ranges per split, so no face is in two splits.
_IDENTITY_BASE = {"train": 0, "test": 1_000_000, "pretrain": 2_000_000}
_MAX_IDENTITIES = 1_000_000  # the distance between two splits' identity ranges
_DEFAULT_SIZES = {"train": 10_000, "test": 2_000, "pretrain": 20_000}
_DEFAULT_IDENTITIES = {"train": 4_000, "test": 1_000, "pretrain": 1_000}
#: What ``targets`` holds: the expression class, or the identity's index in the split's pool.
TARGETS: tuple[str, ...] = ("expression", "identity")

_HAIR_COLOURS = np.array(
    [[20, 16, 14], [45, 30, 20], [80, 50, 28], [120, 80, 45], [170, 130, 80],
     [215, 185, 120], [140, 60, 30], [150, 150, 150], [230, 230, 225]], dtype=np.float64)
_SKIN_DARK = np.array([75, 48, 32], dtype=np.float64)
_SKIN_LIGHT = np.array([250, 218, 196], dtype=np.float64)


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (float(v) for v in c)
    return (int(min(max(r, 0.0), 255.0)), int(min(max(g, 0.0), 255.0)),
            int(min(max(b, 0.0), 255.0)))


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _curve(
    p0: Sequence[float], mid: Sequence[float], p2: Sequence[float], n: int = 9
) -> np.ndarray:
    """Quadratic Bezier from ``p0`` to ``p2`` that passes through ``mid`` at t = 0.5."""
    p0, mid, p2 = np.asarray(p0, float), np.asarray(mid, float), np.asarray(p2, float)
    ctrl = 2.0 * mid - 0.5 * (p0 + p2)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t**2 * p2


class _Pose:
    """Face frame → pixel coordinates: yaw on a cylinder, then roll, scale and shift."""

    def __init__(self, size: float, roll: float, scale: float, shift: tuple[float, float],
                 yaw: float) -> None:
        self.c = np.array([size / 2 + shift[0] * size, size / 2 + shift[1] * size])
        s = scale * size
        ca, sa = np.cos(roll), np.sin(roll)
        self.m = s * np.array([[ca, -sa], [sa, ca]])
        self.cy, self.sy = np.cos(yaw), np.sin(yaw)

    def __call__(self, pts: np.ndarray, depth: float = 0.55, extra: float = 0.0) -> list[float]:
        pts = np.atleast_2d(np.asarray(pts, dtype=np.float64))
        x, y = pts[:, 0], pts[:, 1]
        z = depth * np.sqrt(np.maximum(1.0 - x * x - 0.35 * y * y, 0.0)) + extra
        xy = np.stack([x * self.cy + z * self.sy, y], axis=1)
        return (xy @ self.m.T + self.c).ravel().tolist()

    def length(self, v: float) -> float:
        return float(abs(self.m[0, 0] + 1j * self.m[1, 0]) * v)


def _map_cache(path: str) -> np.ndarray:
    """A SyntheticFER cache file, memory-mapped read-only (never unpickled)."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


class SyntheticFER(FERDataset):
    r"""Procedurally rendered facial-expression images, needing no files.

    Expressions follow the FACS prototypes: Happiness AU6+12; Sadness AU1+4+15; Surprise
    AU1+2+5+26; Fear AU1+2+4+5+20+26; Anger AU4+5+7+23; Disgust AU9+10+15; Contempt unilateral
    AU12+14; Neutral none. A sample of class :math:`c` at intensity
    :math:`I \sim \mathcal{U}(\text{min\_intensity}, 1)` activates each prototype unit :math:`u`
    at :math:`a_u = I \cdot \mathrm{clip}(1 + 0.25\,\epsilon_u, 0.3, 1.6)` and every unit at a
    resting level :math:`|\mathcal{N}(0, 0.06^2)|` on top, so weak fear and weak surprise (which
    differ only by AU4 and AU20) or weak disgust and anger are genuinely hard to tell apart.
    Each unit moves geometry: brow ends (AU1, 2, 4), upper/lower lids (AU5, 6, 7), cheek and
    crow's-feet lines (AU6), nose wrinkles and nostrils (AU9), upper lip (AU10), mouth corners
    (AU12, 14, 15, 20), lip thickness (AU23) and the jaw (AU26). Horizontal flips keep the label
    (contempt's side is random), so flip augmentation is safe.

    With ``target='identity'`` the same images are labelled by who they show instead (classes
    ``identity_0000`` ...), for pre-training a trunk on face recognition as the papers do on
    MS-Celeb-1M; the ``'pretrain'`` split holds people that ``'train'`` and ``'test'`` do not.

    Args:
        split (str): ``'train'``, ``'test'`` or ``'pretrain'``; the three splits draw their
            identities from disjoint pools.
        num_samples (int, optional): images in the split (default: 10 000 train, 2 000 test,
            20 000 pretrain).
        img_size (int): output side in pixels (default: ``112``).
        class_order (str): ``'rafdb'`` (7 classes) or ``'ferplus'`` (8, with contempt)
            (default: ``'rafdb'``).
        seed (int): dataset seed (default: ``0``).
        transform (callable, optional): applied to the PIL RGB image.
        grayscale_prob (float): probability that an image is rendered in gray (default: ``0``).
        occlusion_prob (float): probability of a hand, glasses, a mask or an object over the
            face (default: ``0``).
        min_intensity (float): lower bound of the expression intensity (default: ``0.15``).
        num_identities (int, optional): identities in the split's pool, at most 1 000 000
            (default: 4 000 train, 1 000 test, 1 000 pretrain).
        class_weights (sequence of float, optional): class sampling probabilities
            (default: uniform).
        cache_dir (str, optional): if given, all images are rendered once into
            ``<cache_dir>/synthetic_fer_<hash>.npy`` and memory-mapped afterwards.
        subset (str, optional): a list file; keeps only the names it lists (``synthetic_000042``).
        target (str): ``'expression'`` (the expression class, ``classes`` from
            ``class_order``) or ``'identity'`` (the index of the person in the split's pool,
            ``classes = ['identity_0000', ...]``, one per identity; the face still wears the
            same expression). (default: ``'expression'``)
        start (int): index of the first sample: the dataset holds samples
            ``start .. start + num_samples - 1`` of the split's stream (named by their index),
            so ``start=10_000, num_samples=1_000`` is a held-out set of the same people as
            ``start=0, num_samples=10_000``. (default: ``0``)

    Example:
        >>> ds = SyntheticFER('train', num_samples=100)
        >>> img, label = ds[0]
        >>> img.size, ds.classes[label] in ds.classes
        ((112, 112), True)
    """

    def __init__(
        self,
        split: str = "train",
        num_samples: int | None = None,
        img_size: int = 112,
        class_order: str = "rafdb",
        seed: int = 0,
        transform: Callable | None = None,
        grayscale_prob: float = 0.0,
        occlusion_prob: float = 0.0,
        min_intensity: float = 0.15,
        num_identities: int | None = None,
        class_weights: Sequence[float] | None = None,
        cache_dir: str | None = None,
        subset: str | None = None,
        target: str = "expression",
        start: int = 0,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"SyntheticFER split must be one of {list(_SPLITS)}, got {split!r}")
        if class_order not in ("rafdb", "ferplus"):
            raise ValueError(f"class_order must be 'rafdb' or 'ferplus', got {class_order!r}")
        if target not in TARGETS:
            raise ValueError(f"SyntheticFER target must be one of {list(TARGETS)}, got {target!r}")
        num_samples = _DEFAULT_SIZES[split] if num_samples is None else int(num_samples)
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        start = int(start)
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        if img_size < 16:
            raise ValueError(f"img_size must be >= 16, got {img_size}")
        for name, p in (("grayscale_prob", grayscale_prob), ("occlusion_prob", occlusion_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if not 0.0 <= min_intensity <= 1.0:
            raise ValueError(f"min_intensity must be in [0, 1], got {min_intensity}")
        self.split = split
        self.img_size = int(img_size)
        self.class_order = class_order
        self.seed = int(seed)
        self.grayscale_prob = float(grayscale_prob)
        self.occlusion_prob = float(occlusion_prob)
        self.min_intensity = float(min_intensity)
        self.num_identities = int(_DEFAULT_IDENTITIES[split] if num_identities is None
                                  else num_identities)
        if not 1 <= self.num_identities <= _MAX_IDENTITIES:
            raise ValueError(f"num_identities must be in [1, {_MAX_IDENTITIES}] (the splits' "
                             f"identity ranges are that far apart), got {self.num_identities}")
        self.target = target
        self.start = start
        #: Global id of the pool's first identity: ``sample_params(i)['identity']`` is
        #: ``identity_base`` plus the identity index (the target when ``target='identity'``).
        self.identity_base = _IDENTITY_BASE[split]
        classes = _class_order(class_order)
        self.expression_classes = list(classes)
        num_classes = len(classes)
        if class_weights is None:
            p = np.full(num_classes, 1.0 / num_classes)
        else:
            p = np.asarray(class_weights, dtype=np.float64)
            if p.shape != (num_classes,) or (p < 0).any() or p.sum() <= 0:
                raise ValueError(
                    f"class_weights must be {num_classes} non-negative numbers, "
                    f"got {class_weights}")
            p = p / p.sum()
        # One uniform per index from a (seed, split) stream: a prefix property, so label i does
        # not depend on num_samples (nor on start: the first `start` draws are skipped).
        u = np.random.default_rng([self.seed, _SPLITS[split], 7]).random(start + num_samples)
        u = u[start:]
        # The expression each face wears, whatever the dataset's target.
        self._expressions = np.minimum(np.searchsorted(np.cumsum(p), u, side="right"),
                                       num_classes - 1)
        self._indices = np.arange(start, start + num_samples)
        names = [f"synthetic_{i:06d}" for i in self._indices]
        if target == "identity":
            width = max(4, len(str(self.num_identities - 1)))
            classes = [f"identity_{k:0{width}d}" for k in range(self.num_identities)]
            targets = [self._identity_index(int(i)) for i in self._indices]
            source = f"SyntheticFER(split={split!r}, seed={seed}, target='identity')"
        else:
            targets = self._expressions.tolist()
            source = f"SyntheticFER(split={split!r}, seed={seed})"
        super().__init__(classes=classes, targets=targets, names=names, transform=transform,
                         source=source)
        self._cache: np.ndarray | None = None
        self._cache_path: str | None = None  # the memory-mapped .npy behind _cache
        self._cache_rows = np.arange(len(self))  # sample i is row _cache_rows[i] of the cache
        if subset is not None:
            self.apply_subset(subset)
        if cache_dir is not None:
            self._cache_path, self._cache = self._load_or_build_cache(cache_dir)
            self._cache_rows = np.arange(len(self))

    def __getstate__(self) -> dict:
        # A pickled np.memmap carries its whole data: a DataLoader worker started by spawn
        # (macOS, Windows) would hold a private copy of the cache. Send the file's path
        # instead; the copy maps the same file.
        state = self.__dict__.copy()
        if self._cache_path is not None:
            state["_cache"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._cache_path is not None:
            self._cache = _map_cache(self._cache_path)

    # ----------------------------------------------------------------------------------------
    def _restrict(self, keep: Sequence[int]) -> None:
        super()._restrict(keep)
        keep = np.asarray(keep, dtype=np.int64)
        self._indices = self._indices[keep]
        self._expressions = self._expressions[keep]
        self._cache_rows = self._cache_rows[keep]  # a cache built before keeps its rows

    def _cache_key(self) -> str:
        # Everything the pixels depend on: the stream indices (so `start`) and the expressions.
        # The target does not change a pixel, so an identity-labelled dataset shares the cache
        # file of the expression-labelled one over the same samples.
        key = repr((self.split, self.img_size, self.class_order, self.seed, self.grayscale_prob,
                    self.occlusion_prob, self.min_intensity, self.num_identities,
                    self._indices.tolist(), self._expressions.tolist()))
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def _load_or_build_cache(self, cache_dir: str) -> tuple[str, np.ndarray]:
        """The cache file of this dataset's pixels (built when missing or damaged), and its
        memory map."""
        os.makedirs(cache_dir, exist_ok=True)
        path = os.path.join(cache_dir, f"synthetic_fer_{self._cache_key()}.npy")
        shape = (len(self), self.img_size, self.img_size, 3)
        if os.path.exists(path):
            try:
                arr = _map_cache(path)
                problem = None if (arr.shape, arr.dtype) == (shape, np.uint8) else (
                    f"holds {arr.dtype} {arr.shape}, not uint8 {shape}")
            except (ValueError, OSError, EOFError) as err:  # truncated (even empty) or foreign
                problem = str(err)
            if problem is None:
                return path, arr
            warnings.warn(f"{self.source}: cache file {path} is unusable ({problem}); "
                          "rebuilding it", stacklevel=3)
        arr = np.empty(shape, dtype=np.uint8)
        for i in range(len(self)):
            arr[i] = np.asarray(self.render(i))
        with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())  # on disk before it replaces the name: a crash leaves no stub
        return path, _map_cache(path)

    def load_image(self, i: int) -> Image.Image:
        if self._cache is not None:
            return Image.fromarray(np.array(self._cache[self._cache_rows[i]]))
        return self.render(i)

    # ----------------------------------------------------------------------------------------
    def _sample_rng(self, index: int) -> np.random.Generator:
        """The random stream of the sample at stream index ``index``; its first draw is the
        identity's index in the split's pool."""
        return np.random.default_rng([self.seed, _SPLITS[self.split], 1, index])

    def _identity_index(self, index: int) -> int:
        return int(self._sample_rng(index).integers(self.num_identities))

    def sample_params(self, i: int) -> dict[str, Any]:
        """The random parameters of sample ``i``: identity id, intensity and AU activations.

        ``label`` and ``class`` are the expression the face wears (an index into
        ``expression_classes``), whatever ``target`` is; ``identity`` is the global identity
        id (the split's base plus the identity target). Label noise set through ``targets``
        changes the training target, not the face.
        """
        index = int(self._indices[i])
        label = int(self._expressions[i])
        rng = self._sample_rng(index)
        identity = self.identity_base + int(rng.integers(self.num_identities))
        cls = self.expression_classes[label]
        aus = {u: abs(rng.normal(0.0, 0.06)) for u in ACTION_UNITS}
        intensity = float(rng.uniform(self.min_intensity, 1.0)) if cls != "neutral" else 0.0
        proto = PROTOTYPES[cls]
        if cls == "contempt":
            side = "L" if rng.random() < 0.5 else "R"
            proto = (f"12{side}", f"14{side}")
        for u in proto:
            aus[u] += intensity * float(np.clip(1.0 + 0.25 * rng.normal(), 0.3, 1.6))
        if cls == "happiness":  # smiles are near-symmetric
            a = 0.5 * (aus["12L"] + aus["12R"])
            d = 0.1 * a * rng.normal()
            aus["12L"], aus["12R"] = a + d, a - d
        return {"index": index, "label": label, "class": cls, "identity": identity,
                "intensity": intensity, "aus": aus, "rng": rng}

    def render(self, i: int) -> Image.Image:
        """Render sample ``i`` (ignores the cache and the transform)."""
        p = self.sample_params(i)
        ident = _identity(np.random.default_rng([self.seed, 99, p["identity"]]))
        return _render(ident, p["aus"], p["rng"], self.img_size, self.grayscale_prob,
                       self.occlusion_prob)


# ============================================================================================
# Identity and rendering
# ============================================================================================
def _identity(rng: np.random.Generator) -> dict[str, Any]:
    tone = rng.uniform(0.0, 1.0)
    skin = _SKIN_DARK + (_SKIN_LIGHT - _SKIN_DARK) * tone ** 0.8
    skin = skin * rng.uniform(0.92, 1.05, 3)
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.2)
    return {
        "skin": skin,
        "lip": skin * np.array([0.78, 0.52, 0.52]) + np.array([25, 5, 10]) * rng.uniform(0.5, 1.5),
        "hair": hair,
        "brow": hair * 0.6 if rng.random() < 0.8 else skin * 0.35,
        "iris": np.array([[60, 40, 25], [40, 70, 110], [70, 90, 50], [30, 22, 18]])[
            rng.integers(4)] * rng.uniform(0.8, 1.3),
        "hair_style": int(rng.integers(4)),  # 0 short, 1 long, 2 bald-ish, 3 fringe
        "hairline": rng.uniform(-0.9, -0.6),
        "rx": rng.uniform(0.86, 1.0), "ry": rng.uniform(1.15, 1.38),
        "jaw": rng.uniform(0.75, 1.0),  # chin width relative to cheeks
        "ex": rng.uniform(0.34, 0.44), "ey": rng.uniform(-0.16, -0.04),
        "ew": rng.uniform(0.15, 0.2), "eh": rng.uniform(0.065, 0.095),
        "bd": rng.uniform(0.19, 0.27), "bt": rng.uniform(0.035, 0.075),
        "barch": rng.uniform(0.01, 0.06), "blen": rng.uniform(0.36, 0.46),
        "brest": rng.normal(0.0, 0.025),  # resting inner-brow height (some people look worried)
        "nw": rng.uniform(0.09, 0.14), "ny": rng.uniform(0.28, 0.4),
        "my": rng.uniform(0.62, 0.76), "mw": rng.uniform(0.26, 0.38),
        "tu": rng.uniform(0.035, 0.065), "tl": rng.uniform(0.045, 0.085),
        "mrest": rng.normal(0.0, 0.018),  # resting mouth-corner height
        "toothy": rng.uniform(0.0, 1.0),
        "age": rng.uniform(0.0, 1.0),  # resting wrinkle strength
        "neck": rng.uniform(0.35, 0.5),
        "cloth": rng.uniform(20, 235, 3),
    }


def _bg(rng: np.random.Generator, size: int) -> Image.Image:
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    ang = rng.uniform(0, 2 * np.pi)
    g = np.linspace(-1.0, 1.0, 8)
    t = 0.5 + 0.5 * (np.cos(ang) * g[None, :] + np.sin(ang) * g[:, None]) / np.sqrt(2)
    img = a + (b - a) * t[..., None]  # an 8x8 gradient, upsampled: cheap and smooth
    im = Image.fromarray(img.astype(np.uint8)).resize((size, size), Image.BILINEAR)
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(2, 9))):
        col = _rgb(rng.uniform(0, 255, 3))
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        w, h = rng.uniform(0.05, 0.6, 2) * size
        kind = rng.integers(3)
        if kind == 0:
            d.rectangle([x0, y0, x0 + w, y0 + h], fill=col)
        elif kind == 1:
            d.ellipse([x0, y0, x0 + w, y0 + h], fill=col)
        else:
            d.line([x0, y0, x0 + w, y0 + h], fill=col, width=max(1, int(rng.uniform(1, 6))))
    return im


@dataclass(frozen=True)
class _Canvas:
    """What every face part draws with: the drawer, the head pose, the thin-line width."""

    draw: ImageDraw.ImageDraw
    pose: _Pose
    line_width: int


@dataclass(frozen=True)
class _Mouth:
    """Mouth geometry of an expression, in face coordinates (+x = right of the image)."""

    left: np.ndarray  # corners
    right: np.ndarray
    smile: float
    jaw_drop: float
    upper_in: float  # mid-lip heights: inner and outer edges of each lip
    lower_in: float
    upper_out: float
    lower_out: float


def _render(idn: dict[str, Any], au: dict[str, float], rng: np.random.Generator, out: int,
            grayscale_prob: float, occlusion_prob: float) -> Image.Image:
    """Draw one face at twice the output size, part by part, then the photometric nuisance.

    The parts are drawn back to front; the random draws happen in a fixed order (background,
    pose, gaze, occlusion, photometric), so a sample is a function of its generator's seed.
    """
    size = 2 * out
    im = _bg(rng, size)
    pose = _Pose(size, roll=rng.normal(0, 0.14), scale=rng.uniform(0.26, 0.33),
                 shift=(rng.normal(0, 0.035), rng.normal(0.02, 0.03)), yaw=rng.normal(0, 0.22))
    canvas = _Canvas(ImageDraw.Draw(im), pose, max(1, round(size / 160)))
    mouth = _mouth_shape(idn, au)
    head, chin = _draw_head(canvas, idn, mouth.jaw_drop)
    if idn["hair_style"] != 2:
        _draw_hair(canvas, idn, head)
    nose_y = idn["ny"] - 0.045 * au["9"] - 0.02 * au["10"]
    nose_width = idn["nw"] * (1 + 0.35 * au["9"] + 0.2 * au["10"])
    _draw_wrinkles(canvas, idn, au, mouth, nose_y, nose_width)
    _draw_nose(canvas, idn, au, nose_y, nose_width)
    _draw_eyes(canvas, idn, au, gaze=rng.normal(0, 0.025, 2))
    _draw_brows(canvas, idn, au)
    _draw_mouth(canvas, idn, au, mouth)
    if rng.random() < occlusion_prob:
        _occlude(canvas.draw, pose, rng, idn, idn["ey"], idn["ex"], idn["my"], chin,
                 canvas.line_width)
    return _photometric(im.reduce(2), rng, out, grayscale_prob)


def _mouth_shape(idn: dict[str, Any], au: dict[str, float]) -> _Mouth:
    """Mouth corners and lip heights from the action units."""
    jaw_drop = 0.32 * au["26"]
    # Mouth corners (per side, + = right of the image). AU12 up/out, AU14 in, AU15 down,
    # AU20 out/flat, AU23 in; jaw drop pulls corners in a little (oval mouth).
    mw, my = idn["mw"], idn["my"]
    corners = []
    for side, sgn in (("L", -1.0), ("R", 1.0)):
        dy = (-0.15 * au["12" + side] + 0.12 * au["15"] - 0.02 * au["20"]
              + 0.02 * au["14" + side] - idn["mrest"])
        dx = (0.07 * au["12" + side] + 0.11 * au["20"] - 0.07 * au["23"] - 0.05 * au["14" + side]
              - 0.08 * au["26"] * (1 - au["20"]) + 0.015 * au["10"])
        corners.append(np.array([sgn * (mw + dx), my + dy]))
    smile = 0.5 * (au["12L"] + au["12R"])
    open_ = jaw_drop + 0.05 * au["20"] * au["26"] + 0.05 * smile * idn["toothy"]
    up_raise = 0.07 * au["10"]
    upper_thickness = idn["tu"] * (1 - 0.65 * au["23"]) * (1 - 0.3 * au["10"])
    lower_thickness = idn["tl"] * (1 - 0.6 * au["23"])
    # Mid-lip y positions: lip line sits low in a smile, high with AU15.
    mid_line = my + 0.035 * smile - 0.03 * au["15"] + 0.02 * au["10"]
    upper_in = mid_line - 0.35 * open_ - up_raise * 0.6
    lower_in = mid_line + 0.65 * open_
    return _Mouth(left=corners[0], right=corners[1], smile=smile, jaw_drop=jaw_drop,
                  upper_in=upper_in, lower_in=lower_in,
                  upper_out=upper_in - upper_thickness - 0.25 * up_raise,
                  lower_out=lower_in + lower_thickness)


def _draw_head(canvas: _Canvas, idn: dict[str, Any],
               jaw_drop: float) -> tuple[np.ndarray, float]:
    """Body, neck, hair behind the head, ears and the head; returns its outline and chin."""
    draw, pose = canvas.draw, canvas.pose
    skin = idn["skin"]
    rx, ry = idn["rx"], idn["ry"]
    chin = ry + 0.55 * jaw_drop
    draw.polygon(pose(np.array([[-2.4, 3.2], [-1.7, ry + 0.5], [1.7, ry + 0.5], [2.4, 3.2]]), 0),
                 fill=_rgb(idn["cloth"]))
    nk = idn["neck"] * 1.8
    draw.polygon(pose(np.array([[-nk, 0.6], [nk, 0.6], [nk * 1.1, ry + 0.8],
                                [-nk * 1.1, ry + 0.8]]), 0), fill=_rgb(skin * 0.85))
    if idn["hair_style"] == 1:
        draw.polygon(pose(np.concatenate([_ellipse(0, -0.15, rx * 1.22, ry * 1.05, 24)[12:],
                                          np.array([[rx * 1.25, 1.3], [-rx * 1.25, 1.3]])]), 0),
                     fill=_rgb(idn["hair"] * 0.85))
    for sgn in (-1, 1):  # ears
        draw.polygon(pose(_ellipse(sgn * rx * 0.98, -0.02, 0.14, 0.24, 14), 0),
                     fill=_rgb(skin * 0.9))
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    hx = np.cos(angles) * rx
    hy = np.sin(angles)
    lower = hy > 0
    hx = np.where(lower, hx * (1 - (1 - idn["jaw"]) * hy ** 2), hx)
    head = np.stack([hx, np.where(lower, hy * chin, hy * ry)], axis=1)
    draw.polygon(pose(head, 0), fill=_rgb(skin))
    return head, chin


def _draw_hair(canvas: _Canvas, idn: dict[str, Any], head: np.ndarray) -> None:
    """Hair on top of the head, down to the hairline."""
    rx, hairline, style = idn["rx"], idn["hairline"], idn["hair_style"]
    top = head[(head[:, 1] < hairline)]
    top = top[np.argsort(np.arctan2(top[:, 1], top[:, 0]))]
    cap = np.concatenate([top * 1.06 + np.array([0, -0.04]),
                          _curve([rx * 0.9, hairline + 0.15],
                                 [0, hairline + (0.25 if style == 3 else -0.02)],
                                 [-rx * 0.9, hairline + 0.15], 9)])
    canvas.draw.polygon(canvas.pose(cap, 0.3), fill=_rgb(idn["hair"]))


def _draw_wrinkles(canvas: _Canvas, idn: dict[str, Any], au: dict[str, float], mouth: _Mouth,
                   nose_y: float, nose_width: float) -> None:
    """Forehead (AU1/2 + age), glabella (AU4), nasolabial folds, crow's feet (AU6)."""
    draw, pose, lw = canvas.draw, canvas.pose, canvas.line_width
    skin, ey, ex = idn["skin"], idn["ey"], idn["ex"]
    forehead = max(au["1"], au["2"]) * 1.2 + 0.25 * idn["age"]
    if forehead > 0.15:
        col = _rgb(skin * (1 - 0.22 * min(forehead, 1.0)))
        for k in range(3):
            yy = ey - idn["bd"] - 0.17 - 0.08 * k - 0.06 * au["1"]
            mid = [0, yy - 0.015 * (au["1"] - au["4"])]
            draw.line(pose(_curve([-0.45, yy + 0.02], mid, [0.45, yy + 0.02], 7)), fill=col,
                      width=lw)
    if au["4"] > 0.12:
        col = _rgb(skin * (1 - 0.3 * min(au["4"], 1.0)))
        for sgn in (-1, 1):
            xx = sgn * 0.07
            draw.line(pose(np.array([[xx, ey - idn["bd"] - 0.08],
                                     [xx * 0.8, ey - idn["bd"] + 0.08]])), fill=col, width=lw)
    fold = 0.12 + 0.35 * (au["6"] + mouth.smile + au["9"] + au["10"]) + 0.2 * idn["age"]
    col = _rgb(skin * (1 - 0.28 * min(fold, 1.0)))
    for corner, sgn in ((mouth.left, -1), (mouth.right, 1)):
        start = [sgn * (nose_width + 0.06), nose_y - 0.03]
        end = corner + np.array([sgn * 0.07, 0.06])
        midp = 0.5 * (np.array(start) + end) + np.array([sgn * 0.06, 0])
        draw.line(pose(_curve(start, midp, end, 7)), fill=col, width=lw)
    if au["6"] > 0.15:
        col = _rgb(skin * (1 - 0.3 * min(au["6"], 1.0)))
        for sgn in (-1, 1):
            ox = sgn * (ex + idn["ew"] + 0.03)
            for k in (-1, 0, 1):
                draw.line(pose(np.array([[ox, ey + 0.03 * k], [ox + sgn * 0.09, ey + 0.06 * k]])),
                          fill=col, width=lw)


def _draw_nose(canvas: _Canvas, idn: dict[str, Any], au: dict[str, float], nose_y: float,
               nose_width: float) -> None:
    """Bridge, tip, nostrils and the AU9 wrinkles across the bridge."""
    draw, pose, lw = canvas.draw, canvas.pose, canvas.line_width
    skin, ey, nw = idn["skin"], idn["ey"], nose_width
    draw.line(pose(_curve([-0.07, ey + 0.05], [-0.09, 0.5 * (ey + nose_y)],
                          [-nw * 0.9, nose_y - 0.05], 6), extra=0.15),
              fill=_rgb(skin * 0.85), width=lw)
    draw.polygon(pose(_ellipse(0, nose_y - 0.01, nw * 0.8, 0.06, 14), extra=0.25),
                 fill=_rgb(skin * 0.93))
    for sgn in (-1, 1):
        draw.polygon(pose(_ellipse(sgn * nw * 0.55, nose_y + 0.025, nw * 0.32, 0.028, 10),
                          extra=0.2), fill=_rgb(skin * 0.4))
    if au["9"] > 0.12:
        col = _rgb(skin * (1 - 0.35 * min(au["9"], 1.0)))
        for k in range(3):
            yy = ey + 0.04 + 0.045 * k
            draw.line(pose(np.array([[-0.09, yy], [0.0, yy - 0.015], [0.09, yy]]), extra=0.12),
                      fill=col, width=lw)


def _draw_eyes(canvas: _Canvas, idn: dict[str, Any], au: dict[str, float],
               gaze: np.ndarray) -> None:
    """Both eyes: lids opened/narrowed by AU5/6/7/4, iris and pupil at ``gaze``, creases."""
    draw, pose, lw = canvas.draw, canvas.pose, canvas.line_width
    skin, ey, ex, eh, ew = idn["skin"], idn["ey"], idn["ex"], idn["eh"], idn["ew"]
    dark = skin * 0.55
    upper = eh * max(0.12, 1 + 1.0 * au["5"] - 0.35 * au["7"] - 0.3 * au["6"] - 0.15 * au["4"])
    lowr = eh * 0.75 * max(0.1, 1 + 0.25 * au["5"] - 0.6 * au["7"] - 0.6 * au["6"])
    tt = np.linspace(0, 1, 9)
    for sgn in (-1, 1):
        cx = sgn * ex
        xs = cx - sgn * ew + sgn * 2 * ew * tt  # inner → outer corner
        bump = np.sin(np.pi * tt) ** 0.8
        yu = ey - upper * bump
        yl = ey + lowr * bump
        eye = np.concatenate([np.stack([xs, yu], 1), np.stack([xs, yl], 1)[::-1]])
        draw.polygon(pose(eye), fill=(238, 236, 230))
        ir = eh * 0.9
        ic = np.array([cx + gaze[0], ey + gaze[1] * 0.4])
        iris = _ellipse(ic[0], ic[1], ir, ir, 16)
        ti = np.clip((iris[:, 0] - xs.min()) / (xs.max() - xs.min()), 0, 1)
        if sgn < 0:
            ti = 1 - ti
        bi = np.sin(np.pi * ti) ** 0.8
        iris[:, 1] = np.clip(iris[:, 1], ey - upper * bi, ey + lowr * bi)
        draw.polygon(pose(iris), fill=_rgb(idn["iris"]))
        pupil = ic + (iris.copy() - ic) * 0.45
        draw.polygon(pose(pupil), fill=(15, 12, 12))
        draw.line(pose(np.stack([xs, yu], 1)), fill=_rgb(dark * 0.5), width=2 * lw)
        draw.line(pose(np.stack([xs, yl], 1)), fill=_rgb(dark), width=lw)
        crease = eh * (0.55 - 0.5 * au["5"] + 0.2 * au["4"])
        if crease > 0.01:
            draw.line(pose(np.stack([xs[1:-1], yu[1:-1] - crease - 0.02], 1)),
                      fill=_rgb(skin * 0.78), width=lw)
        if au["6"] + au["7"] > 0.25:  # raised lower lid / cheek bulge
            bulge = min(au["6"] + au["7"], 1.2)
            draw.line(pose(np.stack([xs[1:-1], yl[1:-1] + 0.035 + 0.01 * bulge], 1)),
                      fill=_rgb(skin * (1 - 0.25 * bulge)), width=lw)


def _draw_brows(canvas: _Canvas, idn: dict[str, Any], au: dict[str, float]) -> None:
    """Brows raised (inner AU1, outer AU2), lowered and drawn together (AU4), AU9's pull."""
    ey, ex, length = idn["ey"], idn["ex"], idn["blen"]
    tt = np.linspace(0, 1, 9)
    for sgn in (-1, 1):
        inner_x = sgn * (ex - 0.17 - 0.06 * au["4"])
        xs = inner_x + sgn * length * tt
        base = ey - idn["bd"] - idn["brest"] * (1 - tt)
        lift = (0.13 * au["1"] * (1 - tt) ** 1.2 + 0.13 * au["2"] * tt ** 0.8
                + 0.05 * au["1"] * au["2"])
        drop = 0.10 * au["4"] * (1 - 0.6 * tt) + 0.03 * au["9"]
        arch = (idn["barch"] + 0.04 * au["2"] - 0.02 * au["4"]) * np.sin(
            np.pi * np.clip(tt * 1.2, 0, 1))
        yb = base - lift + drop - arch
        thick = idn["bt"] * (1.1 - 0.55 * tt)
        brow = np.concatenate([np.stack([xs, yb - thick], 1), np.stack([xs, yb], 1)[::-1]])
        canvas.draw.polygon(canvas.pose(brow), fill=_rgb(idn["brow"]))


def _draw_mouth(canvas: _Canvas, idn: dict[str, Any], au: dict[str, float],
                mouth: _Mouth) -> None:
    """Lips, the open mouth with teeth, the lip line, and AU14 dimples."""
    draw, pose, lw = canvas.draw, canvas.pose, canvas.line_width
    skin = idn["skin"]
    dark = skin * 0.55
    left, right = mouth.left, mouth.right
    upper_out = _curve(left, [0, mouth.upper_out], right, 11)
    lower_out = _curve(left, [0, mouth.lower_out], right, 11)
    up_in = _curve(left, [0, mouth.upper_in], right, 11)
    lo_in = _curve(left, [0, mouth.lower_in], right, 11)
    draw.polygon(pose(np.concatenate([upper_out, lower_out[::-1]]), extra=0.05),
                 fill=_rgb(idn["lip"]))
    gap = mouth.lower_in - mouth.upper_in
    if gap > 0.02:
        draw.polygon(pose(np.concatenate([up_in, lo_in[::-1]]), extra=0.05), fill=(45, 18, 20))
        teeth_h = min(gap * 0.45, 0.07)
        if mouth.smile + au["10"] + au["20"] > 0.25 or gap < 0.12:
            tooth = np.concatenate([up_in[1:-1], (up_in[1:-1] + np.array([0, teeth_h]))[::-1]])
            draw.polygon(pose(tooth, extra=0.05), fill=(232, 228, 215))
    lip_line = (_curve(left, [0, 0.5 * (mouth.upper_in + mouth.lower_in)], right, 11)
                if gap <= 0.02 else up_in)
    draw.line(pose(lip_line, extra=0.05), fill=_rgb(dark * 0.6), width=lw)
    for corner, side, sgn in ((left, "L", -1), (right, "R", 1)):
        if au["14" + side] > 0.15:  # dimple
            depth = min(au["14" + side], 1.0)
            draw.line(pose(_curve(corner + [sgn * 0.03, -0.04], corner + [sgn * 0.06, 0.0],
                                  corner + [sgn * 0.03, 0.05], 5)),
                      fill=_rgb(skin * (1 - 0.35 * depth)), width=lw)


def _photometric(im: Image.Image, rng: np.random.Generator, out: int,
                 grayscale_prob: float) -> Image.Image:
    """Blur, directional lighting, colour gain, contrast, optional gray, sensor noise."""
    if rng.random() < 0.3:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    pixels = np.asarray(im, dtype=np.float32)
    grid = np.linspace(-1.0, 1.0, out, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    shade = 1.0 + rng.uniform(0.0, 0.4) * (np.cos(angle) * grid[None, :]
                                           + np.sin(angle) * grid[:, None])
    gain = rng.uniform(0.65, 1.2) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    pixels = pixels * shade[..., None] * gain
    contrast = rng.uniform(0.7, 1.15)
    pixels = (pixels - pixels.mean()) * contrast + pixels.mean()
    if rng.random() < grayscale_prob:
        luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        pixels = np.repeat(luma[..., None], 3, axis=2)
    pixels = pixels + rng.normal(0, rng.uniform(0, 7), (out, out, 1)).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _occlude(draw: ImageDraw.ImageDraw, pose: _Pose, rng: np.random.Generator,
             idn: dict[str, Any], ey: float, ex: float, my: float, chin: float, lw: int) -> None:
    kind = rng.integers(4)
    if kind == 0:  # hand over a random part of the face
        cx, cy = rng.uniform(-0.6, 0.6), rng.uniform(-0.2, 1.0)
        hand_skin = idn["skin"] * rng.uniform(0.9, 1.1)
        draw.polygon(pose(_ellipse(cx, cy, 0.45, 0.32, 20), 0.6), fill=_rgb(hand_skin))
        ang = rng.uniform(-0.6, 0.6)
        for k in range(4):
            fx = cx - 0.3 + 0.2 * k
            tip = np.array([fx + np.sin(ang) * 0.6, cy - 0.35 - np.cos(ang) * 0.55])
            draw.line(pose(np.array([[fx, cy - 0.2], tip]), 0.6), fill=_rgb(hand_skin),
                      width=int(pose.length(0.16)))
            draw.line(pose(np.array([[fx + 0.08, cy - 0.15], tip + [0.06, 0]]), 0.6),
                      fill=_rgb(hand_skin * 0.75), width=lw)
    elif kind == 1:  # glasses (sometimes sunglasses)
        sun = rng.random() < 0.35
        col = _rgb(rng.uniform(0, 120, 3))
        for sgn in (-1, 1):
            ring = _ellipse(sgn * ex, ey + 0.01, idn["ew"] + 0.07, idn["eh"] + 0.09, 20)
            if sun:
                draw.polygon(pose(ring), fill=(20, 20, 25), outline=col)
            else:
                draw.line(pose(np.concatenate([ring, ring[:1]])), fill=col, width=2 * lw)
        bridge = np.array([[-ex + idn["ew"] + 0.07, ey], [ex - idn["ew"] - 0.07, ey]])
        draw.line(pose(bridge), fill=col, width=2 * lw)
    elif kind == 2:  # face mask over nose and mouth
        col = _rgb([rng.choice([200, 120, 30]), rng.uniform(150, 230), rng.uniform(180, 245)])
        top = idn["ny"] - 0.12
        mask = np.concatenate([_curve([-0.95, top + 0.05], [0, top - 0.05], [0.95, top + 0.05], 9),
                               _curve([0.8, chin - 0.2], [0, chin + 0.05], [-0.8, chin - 0.2], 9)])
        draw.polygon(pose(mask, 0.2), fill=col)
    else:  # a random object (cup, phone, scarf) in front of the face
        col = _rgb(rng.uniform(0, 255, 3))
        cx, cy = rng.uniform(-0.7, 0.7), rng.uniform(-0.3, 1.2)
        w, h = rng.uniform(0.25, 0.6), rng.uniform(0.25, 0.6)
        draw.polygon(pose(np.array([[cx - w, cy - h], [cx + w, cy - h], [cx + w, cy + h],
                                    [cx - w, cy + h]]), 0.6), fill=col)
