"""Loading local checkpoints: the MS-Celeb-1M ResNet-18 layout FER repositories share."""

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import pyg_fer
from pyg_fer.models.weights import load_backbone_weights, load_state_dict_file, map_state_dict_keys
from pyg_fer.models.backbone import ResNetTrunk


def _msceleb_checkpoint(path, drop=(), extra=None, num_identities=11):
    """A file shaped like the shared MS-Celeb-1M ResNet-18: 'state_dict', 'module.', fc."""
    net = torchvision.models.resnet18(num_classes=num_identities)
    sd = {f"module.{k}": v for k, v in net.state_dict().items() if k not in drop}
    sd.update(extra or {})
    torch.save({"state_dict": sd, "epoch": 40, "best_acc": 0.9}, path)
    return net


def test_msceleb_layout_loads_into_face2nodes_and_resnet(tmp_path):
    path = tmp_path / "resnet18_msceleb.pth"
    net = _msceleb_checkpoint(path)
    model = pyg_fer.create_model("face2nodes", embed_dim=32, depth=1, grid_size=2, k=2,
                                 weights=str(path))
    assert torch.equal(model.embed.trunk.conv1.weight, net.conv1.weight)
    assert torch.equal(model.embed.trunk.layer4[1].bn2.running_var, net.layer4[1].bn2.running_var)
    assert "weights" not in model.cfg["kwargs"]  # a checkpoint carries its own weights
    cnn = pyg_fer.create_model("resnet18_fer", weights=path)
    assert torch.equal(cnn.trunk.layer2[0].conv1.weight, net.layer2[0].conv1.weight)
    assert cnn.fc.out_features == 7  # the identity head is not loaded


def test_report_names_ignored_missing_and_unexpected(tmp_path):
    path = tmp_path / "ckpt.pth"
    _msceleb_checkpoint(path, drop=("layer1.0.conv1.weight",),
                        extra={"module.attention.weight": torch.zeros(3)})
    trunk = ResNetTrunk()
    with pytest.raises(ValueError, match=r"ckpt.pth.*missing 1 \(layer1.0.conv1.weight\)"
                                         r".*unexpected 1 \(attention.weight\)"):
        load_backbone_weights(trunk, path)
    report = load_backbone_weights(trunk, path, strict=False)
    assert report.ignored == ["fc.weight", "fc.bias"]
    assert report.missing == ["layer1.0.conv1.weight"]
    assert report.unexpected == ["attention.weight"]


def test_missing_num_batches_tracked_is_harmless(tmp_path):
    path = tmp_path / "old.pth"
    net = torchvision.models.resnet18()
    old = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(old, path)
    report = load_backbone_weights(ResNetTrunk(), path)
    assert report.missing == [] and report.ignored == ["fc.weight", "fc.bias"]


def test_shape_mismatch_names_the_key(tmp_path):
    path = tmp_path / "bad.pth"
    _msceleb_checkpoint(path, extra={"module.conv1.weight": torch.zeros(64, 1, 7, 7)})
    with pytest.raises(ValueError, match=r"conv1.weight: file \(64, 1, 7, 7\) vs model"):
        load_backbone_weights(ResNetTrunk(), path)


def test_unsafe_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_state_dict_file(tmp_path / "nowhere.pth")
    with pytest.raises(ValueError, match="is a folder, not a weights file"):
        load_state_dict_file(tmp_path)
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": _Custom()}, evil)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_state_dict_file(evil)
    text = tmp_path / "notes.pth"
    text.write_text("hello")  # 'h' is a pickle opcode: torch.load raises a bare KeyError
    with pytest.raises(ValueError, match=r"cannot load .*notes\.pth"):
        load_state_dict_file(text)
    empty = tmp_path / "empty.pth"
    torch.save({"state_dict": {}}, empty)
    with pytest.raises(ValueError, match="no state dict"):
        load_state_dict_file(empty)


class _Custom:
    pass


def test_safetensors_and_prefix_mapping(tmp_path):
    net = torchvision.models.resnet18()
    path = tmp_path / "r18.safetensors"
    save_file({f"module.backbone.{k}": v.contiguous() for k, v in net.state_dict().items()},
              str(path))
    trunk = ResNetTrunk(weights=path)
    assert torch.equal(trunk.layer3[0].downsample[0].weight, net.layer3[0].downsample[0].weight)
    with pytest.raises(ValueError, match="collide"):
        map_state_dict_keys({"module.a": torch.zeros(1), "a": torch.zeros(1)})
    # wrappers nest (DDP around a model saved from DDP): every prefix goes
    assert list(map_state_dict_keys({"module.module.conv1.weight": torch.zeros(1)})) == [
        "conv1.weight"]


def test_trunk_keeps_torchvision_keys_and_returns_four_stages():
    trunk = ResNetTrunk()
    net = torchvision.models.resnet18()
    assert list(trunk.state_dict()) == [k for k in net.state_dict() if not k.startswith("fc.")]
    maps = trunk(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == [64, 128, 256, 512]
    assert [m.shape[-1] for m in maps] == [16, 8, 4, 2]
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        ResNetTrunk("vgg16")


def test_face2nodes_checkpoints_with_the_old_embedder_keys_still_load():
    # Before the embedder took its trunk, MSF²PE held it as stem.0/stem.1/stages.<i>.
    model = pyg_fer.create_model("face2nodes", embed_dim=32, depth=1, grid_size=2, k=2)
    old_names = {"trunk.conv1.": "stem.0.", "trunk.bn1.": "stem.1.",
                 **{f"trunk.layer{i + 1}.": f"stages.{i}." for i in range(4)}}

    def to_old(key):
        for new, old in old_names.items():
            if key.startswith("embed." + new):
                return "embed." + old + key[len("embed." + new):]
        return key

    legacy = {to_old(k): v.clone() + 1 for k, v in model.state_dict().items()
              if v.is_floating_point()}
    legacy.update({to_old(k): v for k, v in model.state_dict().items()
                   if not v.is_floating_point()})
    assert "embed.stem.0.weight" in legacy and "embed.stages.3.1.bn2.bias" in legacy
    fresh = pyg_fer.create_model("face2nodes", embed_dim=32, depth=1, grid_size=2, k=2)
    fresh.load_state_dict(legacy)  # strict
    assert torch.equal(fresh.embed.trunk.conv1.weight, model.embed.trunk.conv1.weight + 1)
    new_bias = fresh.embed.trunk.layer4[1].bn2.bias
    assert torch.equal(new_bias, model.embed.trunk.layer4[1].bn2.bias + 1)


def test_pyg_fer_resnet_checkpoint_initialises_trunks(tmp_path):
    """A resnet18_fer run's best.safetensors (keys 'trunk.*', 'fc.*') as trunk weights, e.g.
    after identity pre-training on SyntheticFER's 'pretrain' split."""
    from pyg_fer.engine.checkpoint import save_checkpoint

    torch.manual_seed(0)
    source = pyg_fer.create_model("resnet18_fer", num_classes=11, img_size=32)
    with torch.no_grad():  # far from any initialisation, buffers included
        for name, t in source.trunk.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if "running_var" in name else torch.randn_like(t))
            else:
                t.fill_(7)
    weights, _ = save_checkpoint(source, tmp_path / "best")
    assert weights.name == "best.safetensors"
    assert any(k.startswith("trunk.") for k in load_state_dict_file(weights))
    expected = source.trunk.state_dict()

    f2n = pyg_fer.create_model("face2nodes", img_size=32, grid_size=2, embed_dim=32, depth=1, k=2,
                               weights=str(weights))
    cnn = pyg_fer.create_model("resnet18_fer", img_size=32, weights=weights)
    agfn = pyg_fer.create_model("agfn_resnet18", img_size=32, weights=str(weights))
    for trunk in (f2n.embed.trunk, cnn.trunk, agfn.trunk):
        got = trunk.state_dict()
        assert list(got) == list(expected)
        for key, value in expected.items():
            assert torch.equal(got[key], value), key
    assert cnn.fc.out_features == 7  # the 11-way identity head is ignored, not loaded
    report = load_backbone_weights(ResNetTrunk(), weights)
    assert report.ignored == ["fc.bias", "fc.weight"] and not report.missing


def test_trunk_prefix_collides_with_no_model_keys():
    """Stripping 'trunk.' (and the other wrapper prefixes) maps no two keys of a model's own
    checkpoint onto one name."""
    for name, kwargs in (("resnet18_fer", {}), ("agfn_resnet18", {}),
                         ("face2nodes", dict(grid_size=2, embed_dim=32, depth=1, k=2))):
        sd = pyg_fer.create_model(name, img_size=32, **kwargs).state_dict()
        assert len(map_state_dict_keys(sd)) == len(sd)


@pytest.mark.parametrize("nest", ["state_dict", "model", "model_state_dict", "net"])
def test_a_state_dict_under_any_known_key_is_unwrapped(tmp_path, nest):
    path = tmp_path / "nested.pth"
    torch.save({nest: {"conv1.weight": torch.ones(2)}, "epoch": 40}, path)
    assert list(load_state_dict_file(path)) == ["conv1.weight"]


def test_entries_that_are_not_tensors_are_named(tmp_path):
    path = tmp_path / "flat.pth"  # no nesting key: the training metadata sits beside the weights
    torch.save({"conv1.weight": torch.ones(2), "epoch": 40}, path)
    with pytest.raises(ValueError, match=r"flat\.pth: state dict entries that are not tensors: "
                                         r"\['epoch'\]"):
        load_state_dict_file(path)


def test_every_default_wrapper_prefix_is_stripped():
    prefixes = ("module.", "model.", "backbone.", "base.", "trunk.")
    sd = {f"{p}layer{i}.weight": torch.zeros(1) for i, p in enumerate(prefixes)}
    assert list(map_state_dict_keys(sd)) == [f"layer{i}.weight" for i in range(5)]


def test_every_default_head_is_ignored_and_the_loaded_keys_are_listed(tmp_path):
    path = tmp_path / "heads.pth"
    sd = torchvision.models.resnet18().state_dict()  # with its fc head
    sd.update({"classifier.weight": torch.zeros(2, 4), "head.bias": torch.zeros(2)})
    torch.save(sd, path)
    trunk = ResNetTrunk()
    report = load_backbone_weights(trunk, path)
    assert report.ignored == ["fc.weight", "fc.bias", "classifier.weight", "head.bias"]
    assert report.loaded == list(trunk.state_dict()) and not report.missing
    assert not report.unexpected


def test_strict_loading_refuses_missing_keys_alone_and_unexpected_keys_alone(tmp_path):
    net = torchvision.models.resnet18()
    only_missing, only_unexpected = tmp_path / "missing.pth", tmp_path / "unexpected.pth"
    torch.save({k: v for k, v in net.state_dict().items() if k != "conv1.weight"}, only_missing)
    torch.save({**net.state_dict(), "attention.weight": torch.zeros(3)}, only_unexpected)
    with pytest.raises(ValueError, match=r"missing 1 \(conv1.weight\), unexpected 0 \(-\)"):
        load_backbone_weights(ResNetTrunk(), only_missing)
    with pytest.raises(ValueError, match=r"missing 0 \(-\), unexpected 1 \(attention.weight\)"):
        load_backbone_weights(ResNetTrunk(), only_unexpected)


@pytest.mark.parametrize("strict", [True, False])
def test_a_transposed_weight_is_a_shape_mismatch_even_when_not_strict(tmp_path, strict):
    path = tmp_path / "transposed.pth"
    sd = torchvision.models.resnet18().state_dict()
    sd["conv1.weight"] = sd["conv1.weight"].transpose(0, 1).contiguous()  # as many values
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"transposed\.pth: shape mismatch for 1 keys: "
                                         r"conv1\.weight: file \(3, 64, 7, 7\) vs model "
                                         r"\(64, 3, 7, 7\)"):
        load_backbone_weights(ResNetTrunk(), path, strict=strict)
