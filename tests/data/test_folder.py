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
    # a split folder with no class folder at all is an error, not an empty dataset; one that
    # lacks only some classes just has no samples of them
    write_image(str(tmp_path / "data" / "train" / "a" / "1.png"))
    (tmp_path / "data" / "test").mkdir()
    with pytest.raises(FileNotFoundError, match=r"class folder not found: .*test.a"):
        ImageFolder(str(tmp_path / "data"), "test", classes=["a", "b"])
    assert ImageFolder(str(tmp_path / "data"), "train", classes=["a", "b"]).targets == [0]


def test_missing_split_folder_is_not_read_as_classes(tmp_path, write_image):
    for split in ("train", "val"):
        write_image(str(tmp_path / split / "happy" / "0.png"))
    with pytest.raises(FileNotFoundError, match=r"test \(.* has split folder\(s\) "
                                                r"\['train', 'val'\]\)"):
        build_dataset("imagefolder", str(tmp_path), "test")
    assert build_dataset("imagefolder", str(tmp_path), "val").classes == ["happy"]


def test_flat_folder_serves_every_split(tmp_path, write_image):
    for c in ("happy", "sad"):
        write_image(str(tmp_path / c / "0.png"))
    for split in ("train", "test", None):
        assert ImageFolder(str(tmp_path), split).names == ["happy/0.png", "sad/0.png"]


def test_nested_images_belong_to_their_class_folder(tmp_path, write_image):
    for rel in ("happy/a.png", "happy/session2/b.png", "sad/s1/deep/c.png", "sad/.cache/x.png"):
        write_image(str(tmp_path / rel))
    ds = ImageFolder(str(tmp_path))
    assert ds.names == ["happy/a.png", "happy/session2/b.png", "sad/s1/deep/c.png"]
    assert ds.targets == [0, 0, 1] and ds[2][0].mode == "RGB"
    (tmp_path / "sad" / "s1" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"s1/notes\.txt: not an image"):
        ImageFolder(str(tmp_path))


def test_subset_matches_paths_before_basenames(tmp_path, write_image):
    for c in ("happy", "sad"):
        for n in ("0001.png", "0002.png"):
            write_image(str(tmp_path / "train" / c / n))
    lst = tmp_path / "list.txt"
    lst.write_text("happy/0001.png\nsad/0002.jpg\n")
    ds = ImageFolder(str(tmp_path), "train", subset=str(lst))
    assert ds.names == ["happy/0001.png", "sad/0002.png"] and ds.targets == [0, 1]
    lst.write_text("0001.png\n")
    with pytest.raises(ValueError, match=r"list\.txt: 1 listed name\(s\) fit several samples.*"
                                         r"'0001\.png' fits \['happy/0001\.png', 'sad/0001"):
        ImageFolder(str(tmp_path), "train", subset=str(lst))
    lst.write_text("# nothing yet\n")
    with pytest.raises(ValueError, match=r"list\.txt: lists no names"):
        ImageFolder(str(tmp_path), "train", subset=str(lst))
