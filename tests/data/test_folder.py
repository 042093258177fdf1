import pytest

from pyg_fer.data import ImageFolder, build_dataset, class_order


def test_sorted_and_fixed_class_order(tmp_path, write_image):
    for c, n in (("happiness", 2), ("anger", 1), ("surprise", 1)):
        for i in range(n):
            write_image(str(tmp_path / "train" / c / f"{i}.png"))
    ds = build_dataset("imagefolder", str(tmp_path), "train")
    assert ds.classes == ["anger", "happiness", "surprise"] and ds.targets == [0, 1, 1, 2]
    ds = ImageFolder(str(tmp_path), "train", classes=class_order("rafdb"))
    assert ds.targets == [0, 3, 3, 5] and ds.class_counts()[3] == 2
    assert ds[0][0].mode == "RGB"


def test_grayscale_files_come_out_rgb(tmp_path):
    from PIL import Image
    (tmp_path / "a").mkdir()
    Image.new("L", (8, 8), 77).save(tmp_path / "a" / "g.png")
    img, _ = ImageFolder(str(tmp_path))[0]
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (77, 77, 77)


def test_errors(tmp_path, write_image):
    with pytest.raises(FileNotFoundError, match="missing"):
        ImageFolder(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageFolder(str(tmp_path))
    write_image(str(tmp_path / "joy" / "0.png"))
    with pytest.raises(ValueError, match=r"sub-folder\(s\) \['joy'\]"):
        ImageFolder(str(tmp_path), classes=["anger"])
    (tmp_path / "joy" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="notes.txt: not an image"):
        ImageFolder(str(tmp_path))
