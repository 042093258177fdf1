"""Fixture writers: tiny datasets in the exact on-disk formats of RAF-DB, FERPlus, AffectNet."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from PIL import Image

FERPLUS_NEW_HEADER = ("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,"
                      "contempt,unknown,NF")
AFFECTNET_HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,"
                    "facial_landmarks,expression,valence,arousal")


def label_colour(label: int) -> tuple[int, int, int]:
    """A colour that encodes a label, so tests can check image and label belong together."""
    return (20 + 25 * label, 200 - 20 * label, 90)


def write_image(path: str, colour=(255, 0, 0), size=(16, 16)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=95)


@pytest.fixture
def rafdb_root(tmp_path):
    """RAF-DB: 4 train + 3 test images, labels 1..7, aligned and original folders."""
    rows = [("train_00001.jpg", 1), ("train_00002.jpg", 4), ("train_00003.jpg", 7),
            ("train_00004.jpg", 5), ("test_0001.jpg", 2), ("test_0002.jpg", 6),
            ("test_0003.jpg", 3)]
    (tmp_path / "EmoLabel").mkdir()
    with open(tmp_path / "EmoLabel" / "list_patition_label.txt", "w") as f:
        f.writelines(f"{name} {lab}\n" for name, lab in rows)
    for name, lab in rows:
        stem = name[:-4]
        write_image(str(tmp_path / "Image" / "aligned" / f"{stem}_aligned.jpg"),
                    label_colour(lab - 1))
        write_image(str(tmp_path / "Image" / "original" / name), label_colour(lab - 1), (24, 20))
    return tmp_path


def fer_pixels(value: int) -> str:
    return " ".join([str(value)] * 2304)


# (Usage, name, votes) rows: expected majority label in the comment (FERPlus order)
FERPLUS_ROWS = [
    ("Training", "fer0000000.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),   # neutral? 4/9 -> no majority
    ("Training", "fer0000001.png", [6, 0, 1, 1, 0, 0, 0, 0, 2, 0]),   # 1-votes removed: 6/8 neutral
    ("Training", "fer0000002.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),  # happiness
    ("Training", "fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 0, 2, 8]),   # not a face -> dropped
    ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),                # no image name -> dropped
    ("Training", "fer0000005.png", [0, 0, 0, 0, 0, 0, 0, 9, 1, 0]),   # contempt
    ("PublicTest", "fer0000006.png", [0, 0, 6, 0, 0, 0, 4, 0, 0, 0]),  # surprise
    ("PrivateTest", "fer0000007.png", [0, 0, 0, 7, 3, 0, 0, 0, 0, 0]),  # sadness
]


@pytest.fixture
def ferplus_csv_root(tmp_path):
    with open(tmp_path / "fer2013.csv", "w") as f:
        f.write("emotion,pixels,Usage\n")
        f.writelines(f"{i % 7},{fer_pixels(10 * i)},{usage}\n"
                     for i, (usage, _, _) in enumerate(FERPLUS_ROWS))
    with open(tmp_path / "fer2013new.csv", "w") as f:
        f.write(FERPLUS_NEW_HEADER + "\n")
        f.writelines(f"{usage},{name}," + ",".join(map(str, votes)) + "\n"
                     for usage, name, votes in FERPLUS_ROWS)
    return tmp_path


@pytest.fixture
def ferplus_folder_root(tmp_path):
    folders = {"Training": "FER2013Train", "PublicTest": "FER2013Valid",
               "PrivateTest": "FER2013Test"}
    for i, (usage, name, votes) in enumerate(FERPLUS_ROWS):
        if not name:
            continue
        d = tmp_path / folders[usage]
        d.mkdir(exist_ok=True)
        Image.fromarray(np.full((48, 48), 10 * i, np.uint8), "L").save(d / name)
        with open(d / "label.csv", "a", newline="") as f:
            csv.writer(f).writerow([name, "(0, 0, 48, 48)", *votes])
    return tmp_path


AFFECTNET_ROWS = [  # (path, expression)
    ("1/a.jpg", 0), ("1/b.jpg", 1), ("2/c.jpg", 7), ("2/d.jpg", 8), ("3/e.jpg", 10),
    ("3/f.jpg", 6),
]


@pytest.fixture
def affectnet_csv_root(tmp_path):
    lists = tmp_path / "Manually_Annotated_file_lists"
    lists.mkdir()
    for fname in ("training.csv", "validation.csv"):
        with open(lists / fname, "w") as f:
            f.write(AFFECTNET_HEADER + "\n")
            for rel, code in AFFECTNET_ROWS:
                lm = ";".join(["1.5"] * 136)
                f.write(f"{rel},4,2,8,10,{lm},{code},0.1,-0.2\n")
    for rel, code in AFFECTNET_ROWS:
        write_image(str(tmp_path / "Manually_Annotated_Images" / rel),
                    label_colour(min(code, 7)), (20, 20))
    return tmp_path


@pytest.fixture
def affectnet_npy_root(tmp_path):
    for split in ("train_set", "val_set"):
        img, ann = tmp_path / split / "images", tmp_path / split / "annotations"
        img.mkdir(parents=True)
        ann.mkdir(parents=True)
        for i, code in enumerate([0, 3, 7, 9, 5]):
            write_image(str(img / f"{i}.jpg"), label_colour(min(code, 7)))
            np.save(ann / f"{i}_exp.npy", np.array(str(code)))
            np.save(ann / f"{i}_val.npy", np.array("0.25"))
    return tmp_path


@pytest.fixture(name="label_colour")
def _label_colour_fixture():
    return label_colour


@pytest.fixture(name="write_image")
def _write_image_fixture():
    return write_image
