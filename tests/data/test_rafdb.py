import numpy as np
import pytest

from pyg_fer.data import RAFDB, RAFDB_CLASSES, build_dataset


def _close(img, colour, tol=6):
    return np.abs(np.asarray(img)[8, 8].astype(int) - np.array(colour)).max() <= tol


def test_labels_order_and_split(rafdb_root, label_colour):
    ds = RAFDB(str(rafdb_root), "train")
    assert ds.classes == RAFDB_CLASSES == ["surprise", "fear", "disgust", "happiness", "sadness",
                                           "anger", "neutral"]
    assert ds.names == ["train_00001.jpg", "train_00002.jpg", "train_00003.jpg",
                        "train_00004.jpg"]
    assert ds.targets == [0, 3, 6, 4]
    for i in range(len(ds)):
        img, t = ds[i]
        assert img.mode == "RGB" and img.size == (16, 16)
        assert _close(img, label_colour(t))  # image and label belong together
    test = build_dataset("rafdb", str(rafdb_root), "test")
    assert test.targets == [1, 5, 2] and test.names[0] == "test_0001.jpg"


def test_original_images(rafdb_root):
    ds = RAFDB(str(rafdb_root), "test", image_dir="original")
    assert ds[0][0].size == (24, 20)


def test_alternative_label_file(rafdb_root):
    (rafdb_root / "EmoLabel" / "noise01.txt").write_text(
        "train_00001.jpg 2\ntrain_00002.jpg 4\ntest_0001.jpg 2\n")
    ds = RAFDB(str(rafdb_root), "train", label_file="EmoLabel/noise01.txt")
    assert ds.targets == [1, 3] and ds.label_file.endswith("noise01.txt")


def test_pure_red_is_red_not_blue(rafdb_root, write_image):
    # cv2-style BGR decoding would put 255 in the last channel
    write_image(str(rafdb_root / "Image" / "aligned" / "train_00001_aligned.jpg"), (255, 0, 0))
    px = np.asarray(RAFDB(str(rafdb_root))[0][0])[4, 4]
    assert px[0] >= 250 and px[1] <= 5 and px[2] <= 5


@pytest.mark.parametrize("line, match", [
    ("train_00001.jpg", "line 2: expected"),
    ("train_00001.jpg five", "line 2: expected"),
    ("train_00001.jpg 8", "line 2: label 8 outside 1..7"),
    ("train_00001.jpg 0", "line 2: label 0 outside 1..7"),
    ("val_00001.jpg 3", "line 2: name 'val_00001.jpg'"),
    ("train_00001.jpg 3", "line 2: 'train_00001.jpg' already listed on line 1"),
    ("train_00002.jpg \u0663", "line 2: expected"),  # an Arabic-Indic 3 is not a label
])
def test_malformed_label_lines(rafdb_root, line, match):
    p = rafdb_root / "EmoLabel" / "list_patition_label.txt"
    p.write_text("train_00001.jpg 1\n" + line + "\n")
    with pytest.raises(ValueError, match="list_patition_label.txt, " + match):
        RAFDB(str(rafdb_root))


def test_byte_order_mark_is_not_part_of_the_first_name(rafdb_root):
    p = rafdb_root / "EmoLabel" / "list_patition_label.txt"
    p.write_text("\ufeff" + p.read_text(), encoding="utf-8")
    assert RAFDB(str(rafdb_root)).names[0] == "train_00001.jpg"


def test_missing_files(rafdb_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        RAFDB(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="noise02.txt"):
        RAFDB(str(rafdb_root), label_file="EmoLabel/noise02.txt")
    (rafdb_root / "Image" / "aligned" / "train_00003_aligned.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="train_00003_aligned.jpg"):
        RAFDB(str(rafdb_root))
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = RAFDB(str(rafdb_root), skip_corrupt=True)
    assert ds.targets == [0, 3, 4] and len(ds.skipped) == 1
    (rafdb_root / "EmoLabel" / "list_patition_label.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_patition_label.txt"):
        RAFDB(str(rafdb_root))


def test_truncated_image(rafdb_root, write_image):
    p = rafdb_root / "Image" / "aligned" / "train_00002_aligned.jpg"
    write_image(str(p), (10, 20, 30), (64, 64))
    p.write_bytes(p.read_bytes()[:200])
    ds = RAFDB(str(rafdb_root))
    with pytest.raises(ValueError, match="train_00002_aligned.jpg"):
        ds[1]
    with pytest.warns(UserWarning, match="skipped 1 unreadable") as rec:
        ds = RAFDB(str(rafdb_root), skip_corrupt=True)
    assert len(rec) == 1
    assert ds.names == ["train_00001.jpg", "train_00003.jpg", "train_00004.jpg"]
    assert ds.targets == [0, 6, 4]


def test_subset_list(rafdb_root, tmp_path):
    lst = tmp_path / "occlusion_list.txt"
    lst.write_text("test_0003_aligned.jpg\n# comment\n\ntest_0001.jpg 2\n")
    ds = RAFDB(str(rafdb_root), "test", subset=str(lst))
    assert ds.names == ["test_0001.jpg", "test_0003.jpg"] and ds.targets == [1, 2]
    lst.write_text("test_0009.jpg\n")
    with pytest.raises(ValueError, match="occlusion_list.txt: 1 listed name"):
        RAFDB(str(rafdb_root), "test", subset=str(lst))
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        RAFDB(str(rafdb_root), "test", subset=str(tmp_path / "missing.txt"))


def test_targets_settable_and_summary(rafdb_root):
    ds = RAFDB(str(rafdb_root))
    ds.targets = [6, 6, 6, 6]
    assert ds[0][1] == 6 and ds.targets_original == [0, 3, 6, 4]
    assert ds.class_counts() == [0, 0, 0, 0, 0, 0, 4]
    assert "neutral" in ds.summary() and "4 (100.0%)" in ds.summary()
    with pytest.raises(ValueError, match="target 7 at index 1"):
        ds.targets = [0, 7, 0, 0]
    with pytest.raises(ValueError, match="4 entries"):
        ds.targets = [0]


def test_red_survives_loader_and_transform(rafdb_root, write_image):
    from pyg_fer.data import build_transform

    write_image(str(rafdb_root / "Image" / "aligned" / "train_00001_aligned.jpg"), (255, 0, 0))
    tf = build_transform(False, img_size=8, mean=(0, 0, 0), std=(1, 1, 1))
    x, _ = build_dataset("rafdb", str(rafdb_root), "train", transform=tf)[0]
    assert x[0].min() > 0.95 and x[1:].max() < 0.05
