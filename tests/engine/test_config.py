import pytest

from pyg_fer.engine.config import (
    Config,
    config_from_dict,
    list_recipes,
    load_config,
    parse_overrides,
    save_config,
)
from pyg_fer.models import is_model


def test_defaults_are_the_face2nodes_recipe():
    cfg = Config()
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 1e-3, 1e-4)
    assert cfg.schedule.name == "cosine"
    assert cfg.train.label_smoothing == 0.1
    assert (cfg.train.batch_size, cfg.train.epochs) == (64, 300)


def test_overrides_parse_yaml_scalars():
    out = parse_overrides(["optim.lr=1e-3", "train.epochs=5", "train.amp=false",
                           "data.mean=[0.5, 0.5, 0.5]", "output.name=abc", "train.grad_clip=null"])
    assert out == {"optim": {"lr": 0.001}, "train": {"epochs": 5, "amp": False,
                                                     "grad_clip": None},
                   "data": {"mean": [0.5, 0.5, 0.5]}, "output": {"name": "abc"}}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["optim.lr"])


def test_load_config_with_overrides():
    cfg = load_config({"model": {"name": "_tiny_test_mlp"}},
                      ["optim.lr=0.01", "train.epochs=5", "model.kwargs.hidden=8"])
    assert cfg.optim.lr == 0.01 and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 5
    assert cfg.model.kwargs == {"hidden": 8}


def test_dotted_overrides_set_one_path_and_a_mapping_value_replaces():
    recipe = {"model": {"name": "_tiny_test_mlp", "kwargs": {"hidden": 8, "img_size": 4}}}
    assert load_config(recipe, ["model.kwargs.hidden=16"]).model.kwargs == {
        "hidden": 16, "img_size": 4}
    assert load_config(recipe, ["model.kwargs={hidden: 32}"]).model.kwargs == {"hidden": 32}
    assert load_config(recipe, ["model.kwargs={}"]).model.kwargs == {}
    # applied in order: the later override wins
    cfg = load_config(recipe, ["model.kwargs={}", "model.kwargs.hidden=4"])
    assert cfg.model.kwargs == {"hidden": 4}
    # a nested mapping (the Python API) still merges
    assert load_config(recipe, {"model": {"kwargs": {"hidden": 2}}}).model.kwargs == {
        "hidden": 2, "img_size": 4}
    with pytest.raises(ValueError, match=r"override 'train.epochs.x=1': 'train.epochs' is not"):
        load_config(recipe, ["train.epochs=3", "train.epochs.x=1"])


def test_unknown_key_names_it_and_lists_valid_keys():
    with pytest.raises(ValueError, match=r"'optim.lrr'.*valid keys in section 'optim': name, lr"):
        load_config({"model": {"name": "_tiny_test_mlp"}}, ["optim.lrr=0.1"])
    with pytest.raises(ValueError, match=r"unknown config key 'trainer'.*model, data"):
        config_from_dict({"trainer": {}})


def test_wrong_type_names_the_key():
    with pytest.raises(ValueError, match=r"'train.epochs' must be an int, got 'many'"):
        load_config({"model": {"name": "_tiny_test_mlp"}}, ["train.epochs=many"])
    with pytest.raises(ValueError, match=r"'train.amp' must be true or false"):
        load_config({"model": {"name": "_tiny_test_mlp"}}, ["train.amp=3"])
    with pytest.raises(ValueError, match=r"'optim.lr' must be a float"):
        load_config({"model": {"name": "_tiny_test_mlp"}}, ["optim.lr=true"])
    with pytest.raises(ValueError, match=r"section 'optim' must be a mapping"):
        config_from_dict({"optim": 3})


def test_unknown_model_and_dataset_list_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model 'resnet999'.*face2nodes"):
        load_config({"model": {"name": "resnet999"}})
    valid = "affectnet, ferplus, imagefolder, rafdb, synthetic"
    with pytest.raises(ValueError, match=rf"unknown dataset 'mnist'; valid: {valid}"):
        load_config({"model": {"name": "_tiny_test_mlp"}, "data": {"name": "mnist"}})
    with pytest.raises(ValueError, match=r"'optim.name' is 'rmsprop'; valid: adam, adamw, sgd"):
        load_config({"model": {"name": "_tiny_test_mlp"}, "optim": {"name": "rmsprop"}})


def test_amp_dtype_and_compile_choices():
    tiny = {"model": {"name": "_tiny_test_mlp"}}
    cfg = load_config(tiny, ["train.amp_dtype=bfloat16", "train.compile=reduce-overhead"])
    assert (cfg.train.amp_dtype, cfg.train.compile) == ("bfloat16", "reduce-overhead")
    assert load_config(tiny).train.compile is None  # off unless asked for
    with pytest.raises(ValueError, match=r"'train.amp_dtype' is 'float8'; valid: float16, "
                                         r"bfloat16"):
        load_config(tiny, ["train.amp_dtype=float8"])
    with pytest.raises(ValueError, match=r"'train.compile' is 'fast'; valid: null, default"):
        load_config(tiny, ["train.compile=fast"])
    with pytest.raises(ValueError, match=r"'train.compile' is not supported with "
                                         r"'agfn.enabled'"):
        load_config(tiny, ["train.compile=default", "agfn.enabled=true"])


def test_range_checks():
    with pytest.raises(ValueError, match="train.batch_size"):
        load_config({"model": {"name": "_tiny_test_mlp"}}, ["train.batch_size=0"])
    with pytest.raises(ValueError, match="data.label_noise"):
        load_config({"model": {"name": "_tiny_test_mlp"}}, ["data.label_noise=1.5"])


@pytest.mark.parametrize("override, message", [
    ("train.grad_clip=-1", "'train.grad_clip' must be > 0, or null"),  # would flip gradients
    ("train.grad_clip=0", "'train.grad_clip' must be > 0, or null"),  # would zero them
    ("schedule.step_epochs=0", "'schedule.step_epochs' must be >= 1"),
    ("schedule.min_lr=0.1", r"'schedule.min_lr' must be in \[0, optim.lr = 0.01\]"),
    ("schedule.warmup_epochs=-1", "'schedule.warmup_epochs' must be >= 0"),
    ("schedule.gamma=0", r"'schedule.gamma' must be in \(0, 1\]"),
    ("optim.betas=[0.9]", r"'optim.betas' must be two numbers in \[0, 1\)"),
    ("optim.weight_decay=-1e-4", "'optim.weight_decay' must be >= 0"),
    ("optim.momentum=1.5", r"'optim.momentum' must be in \[0, 1\)"),
    ("data.num_workers=-2", "'data.num_workers' must be >= 0"),
    ("train.eval_batch_size=0", "'train.eval_batch_size' must be >= 1"),
])
def test_more_range_checks_name_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config({"model": {"name": "_tiny_test_mlp"}}, ["optim.lr=0.01", override])


def test_an_empty_section_in_a_recipe_file_is_an_empty_mapping(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("model:\n  name: _tiny_test_mlp\noutput:\ntrain:\n  epochs: 2\n")
    cfg = load_config(path)
    assert cfg.output.name == "recipe" and cfg.train.epochs == 2


def test_yaml_file_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: _tiny_test_mlp\noptim: [\n")
    with pytest.raises(ValueError, match=r"bad.yaml', line \d+: invalid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  name: _tiny_test_mlp\ntrain:\n  epoch: 3\n")
    with pytest.raises(ValueError, match=r"typo.yaml': unknown config key 'train.epoch'"):
        load_config(typo)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="unknown recipe 'nope'.*synthetic_face2nodes"):
        load_config("nope")


def test_yaml_floats_without_dot(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  name: _tiny_test_mlp\noptim:\n  lr: 1e-3\n")
    cfg = load_config(path)
    assert cfg.optim.lr == 0.001
    assert cfg.output.name == "r"  # run name defaults to the recipe's stem


def test_save_and_reload_round_trip(tmp_path):
    cfg = load_config({"model": {"name": "_tiny_test_mlp", "kwargs": {"hidden": 8}}},
                      ["train.grad_clip=1.0", "output.name=x"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


EXPECTED_RECIPES = {
    "synthetic_face2nodes", "synthetic_resnet18", "face2nodes_rafdb", "face2nodes_rafdb_pretrained",
    "face2nodes_ferplus", "face2nodes_ferplus_pretrained", "face2nodes_affectnet",
    "face2nodes_affectnet_pretrained", "agfn_resnet18_rafdb", "agfn_synthetic",
    "synthetic_identity_pretrain",
}


def test_shipped_recipes_exist():
    assert EXPECTED_RECIPES <= set(list_recipes())


@pytest.mark.parametrize("name", sorted(EXPECTED_RECIPES))
def test_shipped_recipes_validate(name):
    import yaml

    from pyg_fer.engine.config import CONFIG_DIR

    model = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())["model"]["name"]
    if not is_model(model):
        pytest.skip(f"model '{model}' is not registered in this checkout")
    cfg = load_config(name)
    assert cfg.output.name == name
    if name.startswith("face2nodes_"):
        assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 1e-3, 1e-4)
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.label_smoothing) == (
            300, 64, 0.1)
        assert cfg.schedule.name == "cosine"
        assert ("weights" in cfg.model.kwargs) == name.endswith("_pretrained")
    if name.startswith("agfn_"):
        assert cfg.agfn.enabled
