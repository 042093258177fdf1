import pytest

from pyg_fer.data import FERDataset, build_dataset, list_datasets


def test_names():
    assert list_datasets() == ["affectnet", "ferplus", "imagefolder", "rafdb", "synthetic"]


def test_contract_on_every_real_loader(rafdb_root, ferplus_csv_root):
    for name, root in (("rafdb", rafdb_root), ("ferplus", ferplus_csv_root)):
        ds = build_dataset(name, str(root), "train")
        assert isinstance(ds, FERDataset) and ds.classes and len(ds.targets) == len(ds)
        img, t = ds[0]
        assert img.mode == "RGB" and t == ds.targets[0]
        ds.targets = [len(ds.classes) - 1] * len(ds)
        assert ds[0][1] == len(ds.classes) - 1


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'fer2013'"):
        build_dataset("fer2013", str(tmp_path), "train")
    with pytest.raises(ValueError, match="no split 'val'"):
        build_dataset("rafdb", str(tmp_path), "val")
    with pytest.raises(ValueError, match="needs a root"):
        build_dataset("rafdb", None, "train")
    with pytest.raises(FileNotFoundError, match="EmoLabel"):
        build_dataset("rafdb", str(tmp_path), "train")
    assert len(build_dataset("synthetic", split="test", num_samples=3)) == 3
    with pytest.raises(ValueError, match=r"dataset 'synthetic' has no option 'num_sample'; "
                                         r"valid options: num_samples, img_size"):
        build_dataset("synthetic", split="test", num_sample=3)
    with pytest.raises(ValueError, match=r"'rafdb' has no option 'label_mode'.*skip_corrupt"):
        build_dataset("rafdb", str(tmp_path), "train", label_mode="majority")
