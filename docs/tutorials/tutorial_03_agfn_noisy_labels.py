"""
Noisy labels with AGFN
======================

AGFN (adaptive graph-based feature normalisation) links the samples of a mini-batch by a
sampled Poisson graph and averages each sample's features with those of similar samples, so a
sample with a wrong label is pulled towards the features of its look-alikes. This tutorial
injects symmetric label noise into a training set, trains a ResNet-18 with and without AGFN in
the engine's coordinate-descent mode, and compares them on the clean test labels.

The run is toy-sized (a few hundred 32×32 SyntheticFER faces, a few epochs on the CPU), so the
accuracies are near chance and say nothing about AGFN's benefit; the page shows how to run the
comparison. The measured, larger CPU benchmark (where AGFN did *not* help at that size) is in
:doc:`../../agfn`.
"""

# %%
# Injecting label noise
# ---------------------
# :func:`~pyg_fer.data.add_label_noise` changes exactly ``round(ratio * n)`` labels, each to a
# class drawn uniformly among the other ``C - 1`` (symmetric noise, AGFN §4.3), and returns which
# ones it changed. The engine does the same to the training split when ``data.label_noise`` is
# set; evaluation always uses the clean labels.

import shutil
import tempfile

import torch

from pyg_fer.data import SyntheticFER, add_label_noise
from pyg_fer.engine import train

torch.set_num_threads(1)
clean = SyntheticFER("train", num_samples=280, img_size=32, min_intensity=0.6).targets
noisy, changed = add_label_noise(clean, ratio=0.3, num_classes=7, seed=0)
print(f"{int(changed.sum())} of {len(clean)} labels changed ({changed.float().mean():.1%})")
print("all changed labels differ from the clean ones:",
      bool((noisy[changed] != torch.as_tensor(clean)[changed]).all()))
transitions = torch.zeros(7, 7, dtype=torch.long)
transitions.index_put_((torch.as_tensor(clean), noisy), torch.tensor(1), accumulate=True)
print("clean (rows) -> noisy (columns) label counts:")
print(transitions)

# %%
# Two runs: ResNet-18 and AGFN on ResNet-18
# -----------------------------------------
# ``agfn_synthetic`` is the shipped recipe for AGFN's coordinate-descent mode on SyntheticFER
# with label noise: the network's weights and the Poisson graph's α, β take alternating steps
# (AGFN Eq. 9–11), after ``agfn.pretrain_epochs`` of plain training. We shrink it and train the
# baseline from the same recipe with AGFN switched off and ``resnet18_fer`` as the model. Both
# use cross-entropy (``agfn.loss=ce``; the recipe's default is AGFN's MSE loss, Eq. 7) so that
# the only difference is AGFN.

runs = tempfile.mkdtemp(prefix="pyg_fer_agfn_")  # the two run folders go here
toy = [
    "data.img_size=32",
    "data.options={img_size: 32, min_intensity: 0.6}",
    "data.train_options={num_samples: 280}",
    "data.eval_options={num_samples: 140}",
    "data.label_noise=0.3",
    "train.epochs=3",
    "train.batch_size=28",
    "train.progress=false",
    "train.num_threads=1",
    "agfn.pretrain_epochs=1",
    "agfn.loss=ce",
    f"output.dir={runs}",
]
baseline = train("agfn_synthetic", overrides=toy + [
    "model.name=resnet18_fer", "model.kwargs={}", "agfn.enabled=false", "output.name=baseline",
])
agfn = train("agfn_synthetic", overrides=toy + ["output.name=agfn"])

# %%
# Compare
# -------
# Both runs saw the same noisy labels (``data.label_noise_seed``) and the same data order
# (``train.seed``); accuracy is on the clean test labels, from each run's best checkpoint.

print(f"{'model':<16}{'test accuracy':>15}{'mean class':>12}{'best epoch':>12}")
for name, run in (("resnet18_fer", baseline), ("agfn_resnet18", agfn)):
    best = run["best"]
    print(f"{name:<16}{best['overall_acc']:>15.1%}{best['mean_class_acc']:>12.1%}"
          f"{run['best_epoch']:>12}")

shutil.rmtree(runs)  # the run folders (checkpoints, reports) are not needed below

# %%
# The AGFN model's evaluation graph is ``"identity"`` by default: at test time each image is
# classified on its own, so a prediction never depends on the other images of its batch
# (``eval_graph="bank"`` uses a bank of training features instead; see :doc:`../../agfn`).
#
# At the paper's scale
# --------------------
# ``agfn_resnet18_rafdb`` is AGFN §4.1 on RAF-DB: batch 256, γ1 = 0.01, γ2 = 0.001, 10 baseline
# epochs, MSE loss. With 20 % symmetric noise:
#
# .. code-block:: bash
#
#    pyg-fer train agfn_resnet18_rafdb data.root=/path/to/RAF-DB data.label_noise=0.2
#    pyg-fer train agfn_resnet18_rafdb data.root=/path/to/RAF-DB data.label_noise=0.2 \
#        model.name=resnet18_fer 'model.kwargs={}' agfn.enabled=false output.name=baseline
#
# The paper's regime (batches of 256, many epochs) needs a GPU. ``benchmarks/noisy_labels.py``
# runs the 0/10/20 % comparison with several seeds; :doc:`../../agfn` gives its GPU-sized
# command.
