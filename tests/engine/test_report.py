import json

import pytest
import torch
from PIL import Image

from pyg_fer.engine.report import (
    plot_confusion,
    plot_learning_curves,
    plot_tsne,
    read_metrics,
    write_confusion_csv,
    write_report,
)


@pytest.mark.parametrize("num_classes", [7, 500])
def test_a_confusion_plot_stays_a_bounded_image_at_any_class_count(tmp_path, num_classes):
    # 500 identity classes used to make a ~1.9 G pixel figure with 250 000 cell labels (the
    # identity pre-training recipe was killed for memory at its final report)
    cm = torch.arange(num_classes * num_classes).reshape(num_classes, num_classes) % 5
    path = tmp_path / "cm.png"
    plot_confusion(cm, [f"class_{i}" for i in range(num_classes)], path, title="t")
    width, height = Image.open(path).size
    assert 300 < width <= 2100 and 300 < height <= 2100


def test_a_tsne_plot_of_many_classes_has_no_legend_that_outgrows_it(tmp_path):
    torch.manual_seed(0)
    feats, targets = torch.randn(120, 4), torch.arange(120) % 60
    plot_tsne(feats, targets, [f"c{i}" for i in range(60)], tmp_path / "many.png")
    plot_tsne(feats, targets % 7, [f"c{i}" for i in range(7)], tmp_path / "few.png")
    assert Image.open(tmp_path / "many.png").size[1] <= Image.open(tmp_path / "few.png").size[1]
    assert Image.open(tmp_path / "many.png").size[1] < 800


def test_confusion_csv_has_true_classes_as_rows(tmp_path):
    # cm[i, j]: samples of true class i predicted as j (the rows of report.json's matrix)
    write_confusion_csv(torch.tensor([[3, 1], [0, 2]]), ["a", "b"], tmp_path / "cm.csv")
    lines = (tmp_path / "cm.csv").read_text().splitlines()
    assert lines[1:] == ["a,3,1", "b,0,2"]


def _figure(monkeypatch, plot, *args, **kwargs):
    """The figure ``plot`` draws, caught before it is written."""
    import matplotlib.pyplot as plt

    import pyg_fer.engine.report as report

    figures = []
    monkeypatch.setattr(report, "_save_fig", lambda fig, path: figures.append(fig))
    plot(*args, **kwargs)
    (fig,) = figures
    plt.close(fig)
    return fig


def test_confusion_plot_is_row_normalised_percent_with_readable_cells(monkeypatch, tmp_path):
    cm = torch.tensor([[11, 9], [0, 4]])  # true a: 55 % right, 45 % wrong; true b: all right
    fig = _figure(monkeypatch, plot_confusion, cm, ["a", "b"], tmp_path / "cm.png", title="run")
    ax = fig.axes[0]
    assert ax.images[0].get_array().tolist() == [[55.0, 45.0], [0.0, 100.0]]
    cells = [(t.get_text(), t.get_color()) for t in ax.texts]
    assert cells == [("55.0", "white"), ("45.0", "black"), ("0.0", "black"), ("100.0", "white")]
    assert ax.get_title() == "run"
    no_support = _figure(monkeypatch, plot_confusion, torch.tensor([[2, 0], [0, 0]]), ["a", "b"],
                         tmp_path / "cm.png")
    assert no_support.axes[0].images[0].get_array().tolist() == [[100.0, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize("num_classes, annotated, named", [
    (20, True, True), (21, False, True), (40, False, True), (41, False, False)])
def test_confusion_plot_labels_cells_up_to_20_classes_and_names_up_to_40(
        monkeypatch, tmp_path, num_classes, annotated, named):
    names = [f"c{i}" for i in range(num_classes)]
    fig = _figure(monkeypatch, plot_confusion, torch.eye(num_classes, dtype=torch.long), names,
                  tmp_path / "cm.png")
    ax = fig.axes[0]
    assert len(ax.texts) == (num_classes ** 2 if annotated else 0)
    assert ([t.get_text() for t in ax.get_xticklabels()] == names) is named
    assert ax.get_xlabel() == ("Predicted" if named else
                               f"Predicted (class index; {num_classes} classes, names in the CSV)")


def test_read_metrics_skips_blank_lines_and_names_a_bad_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n\n{"epoch": 2}\n')
    assert read_metrics(path) == [{"epoch": 1}, {"epoch": 2}]
    path.write_text('{"epoch": 1}\n\n{"epoch": 2}\n{"epoch": 3, "lo\n')  # a run killed mid-write
    with pytest.raises(ValueError, match=r"metrics\.jsonl', line 4: invalid JSON"):
        read_metrics(path)


def test_learning_curves_leave_out_missing_and_nan_points(monkeypatch, tmp_path):
    records = [{"epoch": 1, "train_loss": 2.0, "eval_loss": float("nan"), "lr": 0.1},
               {"epoch": 2, "train_loss": 1.0, "eval_loss": 1.5, "lr": 0.05}]
    fig = _figure(monkeypatch, plot_learning_curves, records, tmp_path / "lc.png")
    train, evaluation = fig.axes[0].lines
    assert list(train.get_xdata()) == [1, 2] and list(train.get_ydata()) == [2.0, 1.0]
    assert list(evaluation.get_xdata()) == [2] and list(evaluation.get_ydata()) == [1.5]
    assert all(len(line.get_xdata()) == 0 for line in fig.axes[1].lines)  # no accuracy yet
    assert fig.axes[0].get_xlim() == (0.5, 2.5)


def test_tsne_needs_five_samples_and_keeps_at_most_max_points(monkeypatch, tmp_path):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="t-SNE needs at least 5 samples, got 4"):
        plot_tsne(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), ["a"], tmp_path / "t.png")
    fig = _figure(monkeypatch, plot_tsne, torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1]),
                  ["a", "b"], tmp_path / "t.png", max_points=5)
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 5


def _summary(**extra):
    return {"num_samples": 4, "overall_acc": 0.75, "mean_class_acc": 5 / 6,
            "per_class_acc": {"a": 2 / 3, "b": 1.0, "c": float("nan")},
            "support": {"a": 3, "b": 1, "c": 0}, **extra}


def test_report_markdown_and_json(tmp_path):
    cm = torch.tensor([[2, 1, 0], [0, 1, 0], [0, 0, 0]])
    summary = _summary(loss=0.123456, label_smoothing=0.1, features=torch.zeros(4, 2))
    files = write_report(tmp_path, summary, cm, ["a", "b", "c"],
                         info={"model": "face2nodes", "epoch": 3},
                         metrics_path=tmp_path / "missing.jsonl")  # not written: no curves
    assert sorted(files) == ["confusion_matrix_csv", "confusion_matrix_png", "report_json",
                             "report_md"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert "features" not in report and report["per_class_acc"]["c"] is None
    assert report["model"] == "face2nodes" and report["confusion_matrix"] == cm.tolist()
    assert (tmp_path / "report.md").read_text() == "\n".join([
        "# pyg-fer report", "",
        "- **model**: face2nodes",
        "- **epoch**: 3",
        "- **samples evaluated**: 4",
        "- **overall accuracy**: 75.00%",
        "- **mean class accuracy**: 83.33% (from the confusion matrix)",
        "- **loss**: 0.1235 (ce, label smoothing 0.1)",
        "",
        "| class | support | accuracy |",
        "|---|---:|---:|",
        "| a | 3 | 66.67% |",
        "| b | 1 | 100.00% |",
        "| c | 0 | – |",
        "",
        "![confusion matrix](confusion_matrix.png)",
        ""])
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"epoch": 1, "train_loss": 1.0}\n')
    write_report(tmp_path, _summary(loss=0.5, loss_kind="focal", label_smoothing=0.0), cm,
                 ["a", "b", "c"], metrics_path=metrics)
    md = (tmp_path / "report.md").read_text()
    assert "- **loss**: 0.5000 (focal)\n" in md
    assert md.endswith("![learning curves](learning_curves.png)\n")
