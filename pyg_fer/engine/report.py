"""Run reports: ``report.json`` / ``report.md``, confusion matrix (PNG + CSV), learning curves,
and a t-SNE plot of the learned features (Face2Nodes Fig. 4–7)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from pyg_fer._files import atomic_write_bytes, atomic_write_text, json_text


def _save_fig(fig: plt.Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_confusion_csv(cm: torch.Tensor, class_names: Sequence[str], path: Path) -> None:
    """Counts, rows = true class, columns = predicted class, with a header row and column."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["true\\pred", *class_names])
    for name, row in zip(class_names, cm.tolist(), strict=True):
        writer.writerow([name, *row])
    atomic_write_text(path, buf.getvalue())


#: Above ``_MAX_ANNOTATED`` classes the confusion plot drops the per-cell percentages, above
#: ``_MAX_NAMED`` the class names; the figure stops growing at ``_MAX_INCHES`` a side.
_MAX_ANNOTATED, _MAX_NAMED, _MAX_INCHES = 20, 40, 16.0


def plot_confusion(cm: torch.Tensor, class_names: Sequence[str], path: Path,
                   title: str = "") -> None:
    """Row-normalised confusion matrix in percent, like the papers' Fig. 4–6.

    A small matrix has its cells labelled and its classes named; a large one (an identity
    pre-training run has hundreds of classes) is a heat map of bounded size, its counts and
    names in the CSV.
    """
    counts = cm.to(torch.float64).numpy()
    support = counts.sum(axis=1, keepdims=True)
    pct = np.divide(100 * counts, support, out=np.zeros_like(counts), where=support > 0)
    num_classes = len(class_names)
    fig, ax = plt.subplots(figsize=(min(1.0 + 0.75 * num_classes, _MAX_INCHES),
                                    min(0.8 + 0.7 * num_classes, _MAX_INCHES)))
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    if num_classes <= _MAX_NAMED:
        ax.set_xticks(range(num_classes), labels=class_names, rotation=45, ha="right")
        ax.set_yticks(range(num_classes), labels=class_names)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("True")
    else:
        ax.set_xlabel(f"Predicted (class index; {num_classes} classes, names in the CSV)")
        ax.set_ylabel("True (class index)")
    if num_classes <= _MAX_ANNOTATED:
        for i in range(num_classes):
            for j in range(num_classes):
                ax.text(j, i, f"{pct[i, j]:.1f}", ha="center", va="center", fontsize=8,
                        color="white" if pct[i, j] > 50 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of true class")
    if title:
        ax.set_title(title)
    _save_fig(fig, path)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl`` (one JSON object per line), naming the line at fault."""
    records = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"'{path}', line {lineno}: invalid JSON: {err}") from None
    return records


def plot_learning_curves(records: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Loss, accuracy and learning rate per epoch."""
    epochs = [r["epoch"] for r in records]

    def series(key: str) -> tuple:
        pts = [(r["epoch"], r[key]) for r in records
               if r.get(key) is not None and not math.isnan(r[key])]
        return tuple(zip(*pts, strict=True)) if pts else ((), ())

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("train_loss", "train"), ("eval_loss", "eval")):
        axes[0].plot(*series(key), marker="o", ms=3, label=label)
    axes[0].set_title("Loss")
    for key, label in (("train_acc", "train"), ("eval_acc", "eval overall"),
                       ("eval_mean_class_acc", "eval mean class")):
        axes[1].plot(*series(key), marker="o", ms=3, label=label)
    axes[1].set_title("Accuracy")
    axes[1].set_ylim(0, 1)
    axes[2].plot(*series("lr"), marker="o", ms=3)
    axes[2].set_title("Learning rate (end of epoch)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if epochs:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    axes[0].legend()
    axes[1].legend()
    _save_fig(fig, path)


def plot_tsne(features: torch.Tensor, targets: torch.Tensor, class_names: Sequence[str],
              path: Path, seed: int = 0, max_points: int = 3000) -> None:
    """2-D t-SNE of features (sklearn) coloured by true class, as Face2Nodes Fig. 7."""
    # Imported here, not at the top: sklearn.manifold costs 0.85 s, paid only when a t-SNE
    # plot is asked for instead of on every command-line start.
    from sklearn.manifold import TSNE

    feats = features.reshape(features.shape[0], -1).double().numpy()
    labels = targets.numpy()
    if len(feats) > max_points:
        keep = np.random.default_rng(seed).choice(len(feats), max_points, replace=False)
        feats, labels = feats[keep], labels[keep]
    if len(feats) < 5:
        raise ValueError(f"t-SNE needs at least 5 samples, got {len(feats)}")
    perplexity = float(min(30.0, (len(feats) - 1) / 3))
    emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed) \
        .fit_transform(feats)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    num_classes = len(class_names)
    if num_classes <= 10:
        colors = [plt.get_cmap("tab10")(index) for index in range(num_classes)]
    else:  # one hue per class along a continuous map
        colors = [plt.get_cmap("turbo")(index / (num_classes - 1)) for index in range(num_classes)]
    for index, name in enumerate(class_names):
        mask = labels == index
        if mask.any():
            ax.scatter(emb[mask, 0], emb[mask, 1], s=6, color=colors[index], label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    if num_classes <= _MAX_NAMED:  # a legend of hundreds of names would outgrow the plot
        ax.legend(markerscale=3, fontsize=8, loc="best")
    ax.set_title("t-SNE of forward_features")
    _save_fig(fig, path)


def write_report(
    out_dir: Path,
    summary: Mapping[str, Any],
    cm: torch.Tensor,
    class_names: Sequence[str],
    *,
    info: Mapping[str, Any] | None = None,
    metrics_path: Path | None = None,
    tsne: tuple | None = None,
    seed: int = 0,
) -> dict[str, str]:
    """Write ``report.json``, ``report.md`` and ``confusion_matrix.{png,csv}``; with a
    ``metrics.jsonl`` also ``learning_curves.png``; with ``tsne=(features, targets)`` also
    ``tsne.png``. Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "confusion_matrix_png": out_dir / "confusion_matrix.png",
        "confusion_matrix_csv": out_dir / "confusion_matrix.csv",
    }
    write_confusion_csv(cm, class_names, files["confusion_matrix_csv"])
    plot_confusion(cm, class_names, files["confusion_matrix_png"],
                   title=f"overall {100 * summary['overall_acc']:.2f}%  "
                         f"mean class {100 * summary['mean_class_acc']:.2f}%")
    if metrics_path is not None and Path(metrics_path).is_file():
        files["learning_curves_png"] = out_dir / "learning_curves.png"
        plot_learning_curves(read_metrics(metrics_path), files["learning_curves_png"])
    if tsne is not None:
        files["tsne_png"] = out_dir / "tsne.png"
        plot_tsne(tsne[0], tsne[1], class_names, files["tsne_png"], seed=seed)
    files["report_json"] = out_dir / "report.json"
    files["report_md"] = out_dir / "report.md"
    plain = {k: v for k, v in summary.items() if not isinstance(v, torch.Tensor)}
    report = {
        **dict(info or {}),
        **plain,
        "class_names": list(class_names),
        "confusion_matrix": cm.tolist(),
        "files": {k: Path(v).name for k, v in files.items()},
    }
    atomic_write_text(files["report_json"], json_text(report, indent=2))
    atomic_write_text(files["report_md"], _markdown(report))
    return {k: str(v) for k, v in files.items()}


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _markdown(report: Mapping[str, Any]) -> str:
    lines = ["# pyg-fer report", ""]
    for key in ("model", "checkpoint", "dataset", "split", "epoch", "train_time_s"):
        if report.get(key) is not None:
            lines.append(f"- **{key}**: {report[key]}")
    lines += [
        f"- **samples evaluated**: {report['num_samples']}",
        f"- **overall accuracy**: {_pct(report['overall_acc'])}",
        (f"- **mean class accuracy**: {_pct(report['mean_class_acc'])} (from the confusion "
        f"matrix)"),
    ]
    if report.get("loss") is not None:
        how = report.get("loss_kind", "ce")
        if report.get("label_smoothing"):
            how += f", label smoothing {report['label_smoothing']:g}"
        lines.append(f"- **loss**: {report['loss']:.4f} ({how})")
    lines += [
        "",
        "| class | support | accuracy |",
        "|---|---:|---:|",
    ]
    for name in report["class_names"]:
        lines.append(f"| {name} | {report['support'][name]} | "
                     f"{_pct(report['per_class_acc'][name])} |")
    lines += ["", "![confusion matrix](confusion_matrix.png)", ""]
    if "learning_curves_png" in report["files"]:
        lines += ["![learning curves](learning_curves.png)", ""]
    if "tsne_png" in report["files"]:
        lines += ["![t-SNE](tsne.png)", ""]
    return "\n".join(lines)
