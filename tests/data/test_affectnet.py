import numpy as np
import pytest

from pyg_fer.data import AffectNet, build_dataset
from pyg_fer.data.classes import AFFECTNET_CLASSES


def test_csv_seven_and_eight_classes(affectnet_csv_root, label_colour):
    ds = AffectNet(str(affectnet_csv_root), "train")
    assert ds.classes == AFFECTNET_CLASSES[:7]
    assert ds.names == ["1/a.jpg", "1/b.jpg", "3/f.jpg"] and ds.targets == [0, 1, 6]
    assert ds.dropped == {"contempt (7-class)": 1, "code 8 (None)": 1, "code 10 (No-Face)": 1}
    img, t = ds[2]
    assert img.size == (20, 20)
    assert np.abs(np.asarray(img)[5, 5].astype(int) - label_colour(t)).max() <= 6
    ds8 = build_dataset("affectnet", str(affectnet_csv_root), "test", num_classes=8)
    assert ds8.classes[7] == "contempt" and ds8.targets == [0, 1, 7, 6]


def test_class_codes_are_the_datasets_own():
    # AffectNet's expression codes 0..7, as its paper and file lists define them; a swap here
    # would silently mislabel every AffectNet model
    assert AFFECTNET_CLASSES == ["neutral", "happiness", "sadness", "surprise", "fear",
                                 "disgust", "anger", "contempt"]


def test_crop_face_box(affectnet_csv_root):
    ds = AffectNet(str(affectnet_csv_root), crop_face=True)
    assert ds[0][0].size == (8, 10)  # face_width, face_height


def test_crop_face_box_is_clamped_to_the_image(affectnet_csv_root):
    # PIL pads a crop beyond the image with black: the box is clamped instead, and a box
    # wholly outside the image is an error naming the file
    p = affectnet_csv_root / "Manually_Annotated_file_lists" / "training.csv"
    lines = p.read_text().splitlines()
    lines[1] = lines[1].replace("1/a.jpg,4,2,8,10,", "1/a.jpg,15,-5,10,10,")
    lines[2] = lines[2].replace("1/b.jpg,4,2,8,10,", "1/b.jpg,30,2,8,10,")
    p.write_text("\n".join(lines) + "\n")
    ds = AffectNet(str(affectnet_csv_root), crop_face=True)
    img = np.asarray(ds[0][0])
    assert img.shape == (5, 5, 3) and img.max(axis=-1).min() > 100  # no black padding
    with pytest.raises(ValueError, match=r"b\.jpg: face box \(x=30, y=2, w=8, h=10\) of "
                                         r"'1/b\.jpg' lies outside the 20x20 image"):
        ds[1]


def test_npy_layout(affectnet_npy_root):
    ds = AffectNet(str(affectnet_npy_root), "train", num_classes=8)
    assert ds.layout == "npy"
    assert ds.names == ["0.jpg", "1.jpg", "2.jpg", "4.jpg"] and ds.targets == [0, 3, 7, 5]
    assert AffectNet(str(affectnet_npy_root), "test").targets == [0, 3, 5]


def test_balanced_sampler(affectnet_csv_root):
    import torch
    ds = AffectNet(str(affectnet_csv_root), num_classes=8)
    ds.targets = [0, 0, 0, 1]
    s = ds.balanced_sampler(num_samples=4000, generator=torch.Generator().manual_seed(0))
    drawn = torch.tensor(ds.targets)[torch.tensor(list(s))]
    assert abs((drawn == 1).float().mean().item() - 0.5) < 0.05


def test_bad_inputs(affectnet_csv_root, affectnet_npy_root, tmp_path):
    p = affectnet_csv_root / "Manually_Annotated_file_lists" / "training.csv"
    text = p.read_text()
    lines = text.splitlines()
    p.write_text("\n".join([lines[0].replace("expression", "emotion")] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"training\.csv, line 1: expected header"):
        AffectNet(str(affectnet_csv_root))
    p.write_text("\n".join(lines[:2] + [lines[2].replace(",1,0.1,", ",11,0.1,")]) + "\n")
    with pytest.raises(ValueError, match=r"training\.csv, line 3: expression code 11"):
        AffectNet(str(affectnet_csv_root))
    p.write_text("\n".join(lines[:3] + ["1/x.jpg,4,2,8"]) + "\n")
    with pytest.raises(ValueError, match=r"training\.csv, line 4: expected 9 fields"):
        AffectNet(str(affectnet_csv_root))
    p.write_text("\n".join(lines[:2] + [lines[2].replace(",1,0.1,", ",happy,0.1,")]) + "\n")
    with pytest.raises(ValueError, match=r"line 3: non-numeric"):
        AffectNet(str(affectnet_csv_root))
    p.write_text(text)
    (affectnet_csv_root / "Manually_Annotated_Images" / "1" / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="b.jpg"):
        AffectNet(str(affectnet_csv_root))[1]
    with pytest.warns(UserWarning, match="skipped 1"):
        assert AffectNet(str(affectnet_csv_root), skip_corrupt=True).targets == [0, 6]
    with pytest.raises(ValueError, match="official validation set"):
        build_dataset("affectnet", str(affectnet_csv_root), "val")
    (affectnet_npy_root / "train_set" / "annotations" / "1_exp.npy").unlink()
    with pytest.raises(FileNotFoundError, match="1_exp.npy"):
        AffectNet(str(affectnet_npy_root), layout="npy")
    np.save(affectnet_npy_root / "train_set" / "annotations" / "1_exp.npy", np.array("12"))
    with pytest.raises(ValueError, match="1_exp.npy: expression code 12"):
        AffectNet(str(affectnet_npy_root), layout="npy")
    for bad in (np.nan, np.inf):
        np.save(affectnet_npy_root / "train_set" / "annotations" / "1_exp.npy", np.array(bad))
        with pytest.raises(ValueError, match=r"1_exp\.npy: expression code (nan|inf) is not"):
            AffectNet(str(affectnet_npy_root), layout="npy")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="Manually_Annotated_file_lists"):
        AffectNet(str(empty), layout="csv")


def test_an_image_listed_twice(affectnet_csv_root):
    p = affectnet_csv_root / "Manually_Annotated_file_lists" / "training.csv"
    lines = p.read_text().splitlines()  # header, then 1/a.jpg (line 2), 1/b.jpg (line 3), ...
    # the same row again: used once, and the summary says a row was dropped
    p.write_text("\n".join(lines + [lines[2]]) + "\n")
    ds = AffectNet(str(affectnet_csv_root))
    assert ds.names == ["1/a.jpg", "1/b.jpg", "3/f.jpg"] and ds.targets == [0, 1, 6]
    assert ds.dropped["repeated row"] == 1 and "repeated row=1" in ds.summary()
    # listed again with another label (or box): which one is right cannot be told
    other = lines[2].replace(",1,0.1,", ",6,0.1,")
    p.write_text("\n".join(lines + [other]) + "\n")
    with pytest.raises(ValueError, match=rf"training\.csv, line {len(lines) + 1}: '1/b\.jpg' "
                                         r"already listed on line 3 with other values"):
        AffectNet(str(affectnet_csv_root))
    # a row dropped by the protocol conflicts all the same (code 9 = Uncertain, then anger)
    p.write_text("\n".join(lines[:2] + [lines[2].replace(",1,0.1,", ",9,0.1,")] + lines[2:])
                 + "\n")
    with pytest.raises(ValueError, match=r"line 4: '1/b\.jpg' already listed on line 3"):
        AffectNet(str(affectnet_csv_root))
