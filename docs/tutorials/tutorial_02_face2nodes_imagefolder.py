"""
Train and evaluate Face2Nodes on your own folder of face images
===============================================================

Your data is a folder of face crops sorted by expression, one sub-folder per class (the
``ImageFolder`` layout). This tutorial trains Face2Nodes on such a folder with a shipped recipe
and a few overrides, resumes it after an interruption, reads the report, evaluates the best
checkpoint, and predicts the expressions of new photos.

To run anywhere, it first writes a tiny folder of SyntheticFER faces (the built-in procedural
data set) and trains a small Face2Nodes at 32×32 pixels for a few epochs: the numbers below show
that the pipeline works, not what Face2Nodes reaches. For the paper's setting see
:doc:`tutorial_04_reproduce_papers`.
"""

# %%
# Your folder of faces
# --------------------
# ``pyg_fer.data.ImageFolder`` reads ``root/<split>/<class>/<image>`` (or ``root/<class>/<image>``
# without splits). Any image format PIL reads works; grey, palette and 16-bit images are
# converted to RGB. Here we write 70 training and 28 test faces as PNG files (SyntheticFER
# draws each face's expression at random, so the classes are not balanced).

import json
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from pyg_fer.data import SyntheticFER, build_dataset, build_transform
from pyg_fer.engine import evaluate, load_config, load_model, train

torch.set_num_threads(1)
cwd = os.getcwd()
root = Path(tempfile.mkdtemp(prefix="pyg_fer_tutorial_")) / "my_faces"
for split, per_class in (("train", 10), ("test", 4)):
    synth = SyntheticFER(split, num_samples=7 * per_class, img_size=32, min_intensity=0.6, seed=1)
    for i in range(len(synth)):
        image, label = synth[i]
        folder = root / split / synth.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:04d}.png")

for split in ("train", "test"):
    counts = {d.name: len(list(d.iterdir())) for d in sorted((root / split).iterdir())}
    print(split, counts)

# %%
# The same folder through the loader the engine uses:

train_set = build_dataset("imagefolder", root=str(root), split="train")
print(train_set)
print("classes:", train_set.classes)

# %%
# A recipe and overrides
# ----------------------
# Training is configured by a recipe (a YAML file of ``pyg_fer.engine.Config`` sections) plus
# dotted overrides, exactly as on the command line. ``synthetic_face2nodes`` is the small,
# CPU-sized Face2Nodes recipe; we point its data section at the folder and shrink it further.
# A mapping value (``data.options={}``) replaces the whole mapping, so the SyntheticFER-only
# options of the recipe are dropped.

run_root = root.parent / "runs"
overrides = [
    "data.name=imagefolder",
    f"data.root={root}",
    "data.options={}", "data.train_options={}", "data.eval_options={}",
    "data.img_size=32",
    "model.kwargs={img_size: 32, grid_size: 4, embed_dim: 64, depth: 2}",
    "train.epochs=4",
    "train.batch_size=14",
    "train.progress=false",
    "train.num_threads=1",
    f"output.dir={run_root}",
    "output.name=my_faces",
]
cfg = load_config("synthetic_face2nodes", overrides)
print(cfg.model)
print(cfg.data.name, cfg.data.root, "| epochs:", cfg.train.epochs, "| lr:", cfg.optim.lr)

# %%
# The same run from the shell:
#
# .. code-block:: bash
#
#    pyg-fer train synthetic_face2nodes data.name=imagefolder data.root=/path/to/my_faces \
#        'data.options={}' 'data.train_options={}' 'data.eval_options={}' data.img_size=32 \
#        'model.kwargs={img_size: 32, grid_size: 4, embed_dim: 64, depth: 2}' \
#        train.epochs=4 train.batch_size=14 output.name=my_faces
#
# A misspelt key is an error naming the valid keys, never silently ignored:

try:
    load_config("synthetic_face2nodes", ["optim.lrr=3"])
except ValueError as err:
    print("ValueError:", err)

# %%
# Train, and get interrupted
# --------------------------
# ``train`` writes the run folder: the resolved ``config.yaml``, one ``metrics.jsonl`` line
# per epoch, the best and last checkpoints, the training state for resuming, and, at the end,
# the report. To show ``resume``, this run is stopped after its second of four epochs, as a
# killed job would be: ``on_epoch_end`` (called after each epoch's checkpoints are written)
# raises.


class Interrupted(Exception):
    pass


def stop_after_epoch_2(epoch: int, model: torch.nn.Module, record: dict) -> None:
    if epoch == 2:
        raise Interrupted


try:
    train(cfg, on_epoch_end=stop_after_epoch_2)
except Interrupted:
    print("interrupted after epoch 2")
run_dir = run_root / "my_faces"
print(sorted(p.name for p in run_dir.iterdir()))

# %%
# Resume
# ------
# ``resume`` continues the run from its ``train_state.pt``: weights, optimiser, learning-rate
# schedule, gradient scaler, best-so-far and RNG states. The data order depends only on the
# seed and the epoch, so the resumed run ends with the same weights as one that was never
# interrupted. On the command line: ``pyg-fer train --resume runs/my_faces``.

result = train(run_dir / "config.yaml", resume=run_dir)
print(f"best epoch {result['best_epoch']}, eval accuracy {result['best']['overall_acc']:.1%}")
for line in (run_dir / "metrics.jsonl").read_text().splitlines():
    record = json.loads(line)
    print(f"epoch {record['epoch']}: train loss {record['train_loss']:.3f}, "
          f"eval accuracy {record['eval_acc']:.1%}, lr {record['lr']:.2e}")

# %%
# The report
# ----------
# ``report.md`` (and ``report.json``) re-evaluate the best checkpoint as loaded from disk:
# overall and mean class accuracy, per-class accuracy and support, and the confusion matrix,
# also drawn as ``confusion_matrix.png``; ``learning_curves.png`` plots every epoch.

print((run_dir / "report.md").read_text())

# %%
# The two figures of the report, as written to the run folder:

fig, axes = plt.subplots(2, 1, figsize=(9, 13), height_ratios=[1.6, 1])
for ax, name in zip(axes, ("confusion_matrix.png", "learning_curves.png"), strict=True):
    ax.imshow(plt.imread(run_dir / name))
    ax.set_axis_off()
fig.tight_layout()

# %%
# Evaluate a checkpoint
# ---------------------
# ``load_model`` rebuilds the model from its checkpoint card (architecture, classes, input size,
# normalisation) in eval mode; ``evaluate`` takes any data set of ``(tensor, target)`` items.
# From the shell: ``pyg-fer eval runs/my_faces/best.json``.

model = load_model(run_dir / "best.json")
print(model.cfg["class_names"], model.cfg["input_size"])
transform = build_transform(False, img_size=32, mean=model.cfg["mean"], std=model.cfg["std"])
test_set = build_dataset("imagefolder", root=str(root), split="test", transform=transform)
metrics = evaluate(model, test_set)
print(f"test accuracy {metrics['overall_acc']:.1%}, "
      f"mean class accuracy {metrics['mean_class_acc']:.1%}")

# %%
# Predict on new photos
# ---------------------
# ``pyg-fer predict CHECKPOINT IMAGE...`` prints the top classes of each face with their
# probabilities. These photos are face crops like the training images, so no face detector is
# needed (``--detector none``: the whole image is the face; on ordinary photos the default
# OpenCV detector, ``pip install "pyg-fer[predict]"``, finds the faces first). The checkpoint
# carries the input size and normalisation, so any size is resized to the model's.

from pyg_fer.cli import main as pyg_fer_cli

new_photos = root.parent / "new_photos"
new_photos.mkdir()
fresh = SyntheticFER("test", num_samples=3, img_size=64, min_intensity=0.6, seed=7)
paths = []
for i in range(len(fresh)):
    image, label = fresh[i]
    path = new_photos / f"photo_{i}_{fresh.classes[label]}.jpg"
    image.save(path)
    paths.append(str(path.relative_to(root.parent)))

os.chdir(root.parent)  # so that the output below shows short relative paths
status = pyg_fer_cli(["predict", str(run_dir / "best.json"), *paths, "--top", "3",
                      "--detector", "none"])
assert status == 0, f"pyg-fer predict exited with {status}"
os.chdir(cwd)

# %%
# The toy folder, the run and the photos were written to a temporary directory; remove them.

shutil.rmtree(root.parent)
