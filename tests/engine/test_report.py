import pytest
import torch
from PIL import Image

from pyg_fer.engine.report import plot_confusion, plot_tsne, write_confusion_csv


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
