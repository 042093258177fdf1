import numpy as np
import pytest
import torch

from pyg_fer.data import FERPlus, build_dataset, ferplus_votes_to_target
from pyg_fer.data.classes import FERPLUS_CLASSES


def test_vote_columns_are_the_datasets_own():
    # fer2013new.csv's emotion columns, in order (then unknown, NF)
    assert FERPLUS_CLASSES == ["neutral", "happiness", "surprise", "sadness", "anger",
                               "disgust", "fear", "contempt"]


def test_votes_majority_and_probability_follow_reference():
    # single votes are outliers; 4 of the remaining 9 is no majority
    assert ferplus_votes_to_target([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], "majority") is None
    p = ferplus_votes_to_target([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], "probability")
    assert p == pytest.approx([4 / 7, 0, 0, 0, 3 / 7, 0, 0, 0])
    assert ferplus_votes_to_target([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], "majority")[0] == 1.0
    assert ferplus_votes_to_target([0, 0, 0, 0, 0, 0, 0, 0, 2, 8], "majority") is None
    assert ferplus_votes_to_target([0, 0, 0, 0, 0, 0, 0, 0, 8, 2], "probability") is None
    assert ferplus_votes_to_target([0] * 10, "majority") is None
    # a tie at half the votes is no majority (the reference keeps max > 0.5 * total)
    assert ferplus_votes_to_target([5, 0, 0, 0, 5, 0, 0, 0, 0, 0], "majority") is None
    # probability mode takes classes until 75 % of the votes are in: 5 (50 %), then 3
    p = ferplus_votes_to_target([5, 0, 0, 0, 3, 2, 0, 0, 0, 0], "probability")
    assert p == pytest.approx([5 / 8, 0, 0, 0, 3 / 8, 0, 0, 0])
    with pytest.raises(ValueError, match="label mode"):
        ferplus_votes_to_target([1] * 10, "votes")


def test_csv_layout_majority(ferplus_csv_root):
    ds = FERPlus(str(ferplus_csv_root), "train")
    assert ds.classes[0] == "neutral" and ds.classes[7] == "contempt" and len(ds.classes) == 8
    assert ds.names == ["fer0000001.png", "fer0000002.png", "fer0000005.png"]
    assert ds.targets == [0, 1, 7]
    img, target = ds[1]
    assert img.mode == "RGB" and img.size == (48, 48)
    assert np.asarray(img)[0, 0].tolist() == [20, 20, 20]  # row 2's pixels, gray replicated
    assert target == 1
    assert ds.dropped == {"no majority / unknown / not a face": 2, "not a face (no image name)": 1}
    assert "contempt" in ds.summary() and "dropped" in ds.summary()


def test_csv_layout_splits(ferplus_csv_root):
    val = build_dataset("ferplus", str(ferplus_csv_root), "val")
    test = build_dataset("ferplus", str(ferplus_csv_root), "test")
    assert val.names == ["fer0000006.png"] and val.targets == [2]
    assert test.names == ["fer0000007.png"] and test.targets == [3]
    assert np.asarray(test[0][0])[5, 5, 0] == 70


def test_probability_mode_soft_targets(ferplus_csv_root):
    ds = FERPlus(str(ferplus_csv_root), "train", label_mode="probability")
    assert ds.names[0] == "fer0000000.png"  # kept in probability mode
    _, t = ds[0]
    assert t.dtype == torch.float32 and t.shape == (8,)
    assert torch.allclose(t, torch.tensor([4 / 7, 0, 0, 0, 3 / 7, 0, 0, 0]))
    assert ds.targets[0] == 0
    assert ds.soft_targets.shape == (len(ds), 8)


def test_seven_class_mapping(ferplus_csv_root):
    ds = FERPlus(str(ferplus_csv_root), "train", num_classes=7)
    assert "contempt" not in ds.classes and len(ds.classes) == 7
    assert ds.targets == [0, 1] and ds.dropped["contempt (7-class)"] == 1


def test_folder_layout_matches_csv_layout(ferplus_folder_root, ferplus_csv_root):
    # both fixtures share tmp_path: the layout is chosen explicitly
    a = FERPlus(str(ferplus_folder_root), "train", layout="folders")
    b = FERPlus(str(ferplus_csv_root), "train", layout="csv")
    assert a.layout == "folders" and a.names == b.names and a.targets == b.targets
    assert np.array_equal(np.asarray(a[2][0]), np.asarray(b[2][0]))
    assert FERPlus(str(ferplus_folder_root), "val", layout="folders").targets == [2]


def test_folder_label_without_box(tmp_path):
    d = tmp_path / "FER2013Test"
    d.mkdir()
    from PIL import Image
    Image.new("L", (48, 48), 5).save(d / "fer1.png")
    (d / "label.csv").write_text("fer1.png,0,0,0,9,1,0,0,0,0,0\n")
    assert FERPlus(str(tmp_path), "test").targets == [3]
    (d / "label.csv").write_text("\nfer1.png,0,0,0,9,1,0,0,0,0,0\n\n")  # blank lines skipped
    assert FERPlus(str(tmp_path), "test").targets == [3]


def _rewrite(path, line_no, new_line):
    lines = path.read_text().splitlines()
    lines[line_no - 1] = new_line
    path.write_text("\n".join(lines) + "\n")


def test_bad_inputs(ferplus_csv_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FERPlus(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="FER2013Train"):
        FERPlus(str(empty))
    with pytest.raises(ValueError, match="split"):
        FERPlus(str(ferplus_csv_root), "validation")
    old, new = ferplus_csv_root / "fer2013.csv", ferplus_csv_root / "fer2013new.csv"
    text_old, text_new = old.read_text(), new.read_text()

    _rewrite(new, 1, "Usage,Image name,neutral,happy")
    with pytest.raises(ValueError, match=r"fer2013new\.csv, line 1: expected header"):
        FERPlus(str(ferplus_csv_root))
    new.write_text(text_new)

    _rewrite(old, 1, "label,pixels,Usage")
    with pytest.raises(ValueError, match=r"fer2013\.csv, line 1: expected header"):
        FERPlus(str(ferplus_csv_root))
    old.write_text(text_old)

    _rewrite(old, 3, "0," + " ".join(["1"] * 2303) + ",Training")
    with pytest.raises(ValueError, match=r"fer2013\.csv, line 3: expected 2304 pixels"):
        FERPlus(str(ferplus_csv_root))
    old.write_text(text_old)

    _rewrite(new, 4, "Training,fer0000002.png,0,10,0,0,0,0,0,x,0,0")
    with pytest.raises(ValueError, match=r"fer2013new\.csv, line 4: bad vote"):
        FERPlus(str(ferplus_csv_root))
    _rewrite(new, 4, "Training,fer0000002.png,0,10,0,0,-3,0,0,0,0,0")
    with pytest.raises(ValueError, match=r"line 4: vote counts"):
        FERPlus(str(ferplus_csv_root))
    _rewrite(new, 4, "PublicTest,fer0000002.png,0,10,0,0,0,0,0,0,0,0")
    with pytest.raises(ValueError, match=r"line 4: Usage"):
        FERPlus(str(ferplus_csv_root))
    new.write_text(text_new + "Training,fer9.png,0,10,0,0,0,0,0,0,0,0\n")
    with pytest.raises(ValueError, match="must align"):
        FERPlus(str(ferplus_csv_root))
    new.write_text(text_new)
    old.unlink()
    with pytest.raises(FileNotFoundError, match=r"fer2013\.csv"):
        FERPlus(str(ferplus_csv_root))


def test_folder_bad_inputs(ferplus_folder_root):
    label = ferplus_folder_root / "FER2013Train" / "label.csv"
    text = label.read_text()
    _rewrite(label, 2, "fer0000002.png,1,2")
    with pytest.raises(ValueError, match=r"label\.csv, line 2"):
        FERPlus(str(ferplus_folder_root))
    label.write_text(text)
    (ferplus_folder_root / "FER2013Train" / "fer0000002.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    ds = FERPlus(str(ferplus_folder_root))
    with pytest.raises(ValueError, match="fer0000002.png"):
        ds[1]
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = FERPlus(str(ferplus_folder_root), skip_corrupt=True)
    assert ds.names == ["fer0000001.png", "fer0000005.png"] and ds.targets == [0, 7]
    assert "skipped unreadable images: 1" in ds.summary()
    (ferplus_folder_root / "FER2013Train" / "fer0000005.png").unlink()
    with pytest.raises(FileNotFoundError, match="fer0000005.png"):
        FERPlus(str(ferplus_folder_root))
    (ferplus_folder_root / "FER2013Valid" / "label.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"FER2013Valid.label\.csv"):
        FERPlus(str(ferplus_folder_root), "val")


def test_probability_targets_follow_reassigned_labels(ferplus_csv_root):
    # label noise on a probability-mode dataset must reach the loss: a relabelled sample's
    # target is its new class one-hot, the others keep their vote distribution
    ds = FERPlus(str(ferplus_csv_root), "train", label_mode="probability")
    votes = ds.soft_targets.clone()
    ds.targets = [5] + ds.targets[1:]
    assert torch.equal(ds[0][1], torch.eye(8)[5])
    assert torch.equal(ds.soft_targets[0], torch.eye(8)[5])
    assert torch.equal(ds.soft_targets[1:], votes[1:]) and torch.equal(ds[1][1], votes[1])
    ds.targets = ds.targets_original
    assert torch.equal(ds[0][1], votes[0])


def test_seven_class_probability_drops_contempt_majority(tmp_path):
    # 7/10 contempt + 3 anger: dropped in both modes (never relabelled as anger); 3 contempt +
    # 7 anger: kept in both, as anger (probability mode: the contempt share removed), so the
    # two label modes keep the same faces
    d = tmp_path / "FER2013Train"
    d.mkdir()
    from PIL import Image
    for n in ("a.png", "b.png"):
        Image.new("L", (48, 48), 5).save(d / n)
    (d / "label.csv").write_text("a.png,0,0,0,0,3,0,0,7,0,0\nb.png,0,0,0,0,7,0,0,3,0,0\n")
    for mode in ("majority", "probability"):
        ds = FERPlus(str(tmp_path), "train", label_mode=mode, num_classes=7)
        assert ds.names == ["b.png"] and ds.targets == [4]
        assert ds.dropped["contempt (7-class)"] == 1
    assert torch.equal(ds[0][1], torch.eye(7)[4])


def test_duplicate_names_and_bom(ferplus_csv_root, ferplus_folder_root):
    new = ferplus_csv_root / "fer2013new.csv"
    text = new.read_text()
    new.write_text("\ufeff" + text)  # a spreadsheet's UTF-8 byte-order mark is not an error
    assert FERPlus(str(ferplus_csv_root), "train", layout="csv").targets == [0, 1, 7]
    _rewrite(new, 4, "Training,fer0000001.png,0,10,0,0,0,0,0,0,0,0")
    with pytest.raises(ValueError, match=r"fer2013new\.csv, line 4: 'fer0000001.png' already "
                                         r"listed on line 3"):
        FERPlus(str(ferplus_csv_root), "test", layout="csv")
    label = ferplus_folder_root / "FER2013Train" / "label.csv"
    label.write_text(label.read_text() + "fer0000002.png,0,10,0,0,0,0,0,0,0,0\n")
    with pytest.raises(ValueError, match=r"label\.csv, line 6: 'fer0000002.png' already"):
        FERPlus(str(ferplus_folder_root), layout="folders")


@pytest.mark.parametrize("votes, expected", [
    # ties are taken together: 3 + 3 is exactly 75 % of 8, so the 2 is not added
    ([3, 3, 2, 0, 0, 0, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0, 0, 0, 0]),
    # 5 + 4 < 75 % of 14, so a third class comes in, and then no more
    ([5, 4, 3, 2, 0, 0, 0, 0, 0, 0], [5 / 12, 4 / 12, 3 / 12, 0, 0, 0, 0, 0]),
    # the three tied 2s come in together: four classes is too many
    ([3, 2, 2, 2, 0, 0, 0, 0, 0, 0], None),
    # unknown reached after neutral does not count: neutral's 5 is exactly half, so dropped
    ([5, 0, 0, 0, 0, 0, 0, 0, 3, 2], None),
    # unknown tied with neutral: neutral alone holds 4 of 10, so dropped
    ([4, 0, 0, 0, 0, 0, 0, 0, 4, 2], None),
])
def test_probability_mode_edge_cases_follow_the_reference(votes, expected):
    p = ferplus_votes_to_target(votes, "probability")
    assert p is None if expected is None else p == pytest.approx(expected)


def test_more_bad_csv_inputs(ferplus_csv_root):
    old, new = ferplus_csv_root / "fer2013.csv", ferplus_csv_root / "fer2013new.csv"
    text_old, text_new = old.read_text(), new.read_text()
    _rewrite(new, 4, "Training,fer0000002.png,0,9.5,0,0,0,0,0,0,0,0")
    with pytest.raises(ValueError, match=r"line 4: vote counts must be non-negative integers"):
        FERPlus(str(ferplus_csv_root))
    new.write_text(text_new)
    # both files agree on a Usage that is none of the three
    _rewrite(old, 4, text_old.splitlines()[3].rsplit(",", 1)[0] + ",Train")
    _rewrite(new, 4, "Train," + text_new.splitlines()[3].split(",", 1)[1])
    with pytest.raises(ValueError, match=r"fer2013new\.csv, line 4: unknown Usage 'Train'"):
        FERPlus(str(ferplus_csv_root))
    old.write_text(text_old)
    new.write_text(text_new)
    pixels = " ".join(["255"] * 2303 + ["256"])
    _rewrite(old, 4, f"1,{pixels},Training")
    with pytest.raises(ValueError, match=r"fer2013\.csv, line 4: pixel values must be in 0\.\.255"):
        FERPlus(str(ferplus_csv_root))
    _rewrite(old, 4, f"1,{pixels[:-4]} 255,Training")
    assert np.asarray(FERPlus(str(ferplus_csv_root))[1][0]).min() == 255
    _rewrite(old, 4, f"1,{pixels[:-4]} 255,Training,extra")
    with pytest.raises(ValueError, match=r"fer2013\.csv, line 4: expected 3 fields, got 4"):
        FERPlus(str(ferplus_csv_root))
    old.write_text(text_old + text_old.splitlines()[-1] + "\n")
    with pytest.raises(ValueError, match=r"fer2013new\.csv ends at line 9 but the other file"):
        FERPlus(str(ferplus_csv_root))
    old.write_text("")
    with pytest.raises(ValueError, match=r"fer2013\.csv, line 1: expected header"):
        FERPlus(str(ferplus_csv_root))
    with pytest.raises(ValueError, match="num_classes must be 7 or 8, got 6"):
        FERPlus(str(ferplus_csv_root), num_classes=6)


@pytest.mark.parametrize("layout", ["csv", "folders"])
def test_subset_keeps_images_and_soft_targets_together(ferplus_csv_root, ferplus_folder_root,
                                                       layout):
    subset = ferplus_csv_root / "subset.txt"
    subset.write_text("fer0000005.png\nfer0000001.png\n")
    full = FERPlus(str(ferplus_csv_root), "train", label_mode="probability", layout=layout)
    ds = FERPlus(str(ferplus_csv_root), "train", label_mode="probability", layout=layout,
                 subset=str(subset))
    assert ds.names == ["fer0000001.png", "fer0000005.png"] and ds.targets == [0, 7]
    for i, name in enumerate(ds.names):
        j = full.names.index(name)
        assert np.array_equal(np.asarray(ds[i][0]), np.asarray(full[j][0])), name
        assert torch.equal(ds[i][1], full[j][1]) and torch.equal(ds.soft_targets[i],
                                                                 full.soft_targets[j])
    assert np.asarray(ds[1][0])[0, 0, 0] == 50  # fer0000005's pixels (row 5 of the fixture)
