"""
Reproducing the papers on RAF-DB, FERPlus and AffectNet
=======================================================

The three benchmarks of Face2Nodes and AGFN are licensed data sets that you download yourself;
pyg-fer downloads nothing. This page says where each one goes, checks a RAF-DB-shaped folder
with the same loader the recipes use, and prints the exact command and settings of every
shipped recipe (read from ``pyg_fer/configs/*.yaml`` when this page was built, so they cannot
drift from the files).

**Time per epoch on a GPU: not yet measured** (no GPU was available when this page was
written). The CPU-sized measurements are in :doc:`../../training` (the demo) and :doc:`../../agfn`.
"""

# %%
# Where the data goes
# -------------------
# Point ``data.root`` at the folder the data set's archive unpacks to. The loaders expect the
# official layouts (details and label handling in :doc:`../../data`):
#
# ================  ==========================================================================
# data set          layout under ``data.root``
# ================  ==========================================================================
# RAF-DB            ``EmoLabel/list_patition_label.txt`` (``train_00001.jpg 5``; labels 1–7)
#                   and ``Image/aligned/<stem>_aligned.jpg``
# FERPlus           ``fer2013.csv`` + ``fer2013new.csv``, or ``FER2013Train/``,
#                   ``FER2013Valid/``, ``FER2013Test/`` with PNGs and ``label.csv``
# AffectNet         ``Manually_Annotated_file_lists/{training,validation}.csv`` +
#                   ``Manually_Annotated_Images/``, or ``train_set/`` and ``val_set/`` with
#                   ``images/`` and ``annotations/<id>_exp.npy``
# ================  ==========================================================================
#
# A wrong root fails at once, naming the folder it looked for:

from pyg_fer.data import build_dataset

try:
    build_dataset("rafdb", root="/data/RAF-DB", split="train")
except FileNotFoundError as err:
    print("FileNotFoundError:", err)

# %%
# A RAF-DB-shaped folder, checked
# -------------------------------
# To see the layout work end to end, write a few SyntheticFER faces in RAF-DB's layout (label
# file with 1-based labels in RAF-DB's order, aligned images named ``<stem>_aligned.jpg``) and
# load both splits with the loader of the ``face2nodes_rafdb`` recipe. Do the same with your
# download before a long run: the printed counts should be RAF-DB's 12 271 / 3 068.

import shutil
import tempfile
from pathlib import Path

from pyg_fer.data import RAFDB_CLASSES, SyntheticFER

root = Path(tempfile.mkdtemp(prefix="pyg_fer_rafdb_"))
(root / "EmoLabel").mkdir()
(root / "Image" / "aligned").mkdir(parents=True)
lines = []
for split, n in (("train", 14), ("test", 7)):
    faces = SyntheticFER(split, num_samples=n, img_size=100, seed=3)
    assert faces.classes == RAFDB_CLASSES  # SyntheticFER uses RAF-DB's class order
    for i in range(n):
        image, label = faces[i]
        stem = f"{split}_{i + 1:05d}"
        image.save(root / "Image" / "aligned" / f"{stem}_aligned.jpg")
        lines.append(f"{stem}.jpg {label + 1}")
(root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")

for split in ("train", "test"):
    ds = build_dataset("rafdb", root=str(root), split=split)
    print(split, len(ds), "images, classes:", ds.classes)
shutil.rmtree(root)

# %%
# The shipped recipes
# -------------------
# Each real-data recipe is the paper's setting; ``data.root`` is a placeholder you override on
# the command line. The ``_pretrained`` recipes also need ``model.kwargs.weights`` pointed at a
# local MS-Celeb-1M ResNet-18 checkpoint; it initialises the patch embedder's trunk only (see
# :doc:`../../models`). Printed from the recipe files:

from pyg_fer.engine import list_recipes, load_config

ROOTS = {
    "rafdb": "/path/to/RAF-DB", "ferplus": "/path/to/FERPlus", "affectnet": "/path/to/AffectNet",
}
for name in list_recipes():
    cfg = load_config(name)
    if cfg.data.name not in ROOTS:
        continue  # the synthetic recipes need no data
    print(f"pyg-fer train {name} data.root={ROOTS[cfg.data.name]}", end="")
    kwargs = dict(cfg.model.kwargs)
    if kwargs.pop("weights", None) is not None:
        print(" \\\n    model.kwargs.weights=/path/to/resnet18_msceleb.pth", end="")
    o, t = cfg.optim, cfg.train
    print(f"\n    model {cfg.model.name} {kwargs}, {cfg.data.img_size} px, batch {t.batch_size}, "
          f"{t.epochs} epochs"
          f"\n    {o.name} lr {o.lr:g}, weight decay {o.weight_decay:g}, {cfg.schedule.name} "
          f"schedule, label smoothing {t.label_smoothing:g}"
          f"\n    AMP (CUDA only) {t.amp}, AGFN coordinate descent {cfg.agfn.enabled}\n")

# %%
# Running them
# ------------
# On one GPU the commands above are all you need (AMP and channels-last are on for CUDA). On
# several GPUs, ``train.batch_size`` stays the global batch:
#
# .. code-block:: bash
#
#    torchrun --nproc-per-node 4 -m pyg_fer train face2nodes_rafdb data.root=/path/to/RAF-DB
#    pyg-fer train --resume runs/face2nodes_rafdb            # continue after an interruption
#    pyg-fer eval runs/face2nodes_rafdb/best.json --tsne      # report, confusion matrix, t-SNE
#
# FERPlus's probability labels (soft targets, as in the FERPlus paper) and AffectNet's 8-class
# protocol are options of the data set:
#
# .. code-block:: bash
#
#    pyg-fer train face2nodes_ferplus data.root=/path/to/FERPlus \
#        'data.options={label_mode: probability}'
#    pyg-fer train face2nodes_affectnet data.root=/path/to/AffectNet \
#        'data.options={num_classes: 8}'
#
# Time per epoch
# --------------
# Not yet measured on a GPU. For planning: RAF-DB's training split has 12 271 images, so at the
# recipe's batch of 64 an epoch is 191 iterations (the engine drops the last, partial batch of
# 47 images; the shuffle changes which ones every epoch) and the 300-epoch schedule 57 300
# iterations of Face2Nodes at 224×224.
