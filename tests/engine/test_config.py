import re

import pytest

from pyg_fer.engine.config import (
    CONFIG_DIR,
    Config,
    apply_overrides,
    config_from_dict,
    is_override,
    list_recipes,
    load_config,
    parse_overrides,
    read_yaml,
    resolve_recipe,
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
    # an unquoted 08 in a run's config.yaml written before such strings were quoted
    with pytest.raises(ValueError, match=r"'output.name' must be a string, got 8; quote it in "
                                         r"YAML to keep it a string, e.g. '08'"):
        load_config({"model": {"name": "_tiny_test_mlp"}, "output": {"name": 8}})


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


def test_numbers_read_the_same_in_a_file_and_an_override(tmp_path):
    # YAML 1.2 numbers in both: 1e-1 is a float (YAML 1.1: a string) and 0042 is 42 (YAML 1.1:
    # octal 34), in typed keys and in free-form ones (model.kwargs, data.options) alike.
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  name: _tiny_test_mlp\n  kwargs: {rate: 1e-1, hex: 0x1f}\n"
                    "train:\n  seed: 0042\n  epochs: 010\ndata:\n  options: {subset: '0042'}\n")
    from_file = load_config(path)
    assert from_file.model.kwargs == {"rate": 0.1, "hex": 31}
    assert (from_file.train.seed, from_file.train.epochs) == (42, 10)
    assert from_file.data.options == {"subset": "0042"}  # quoted: a string
    from_cli = load_config({"model": {"name": "_tiny_test_mlp"}},
                           ["model.kwargs={rate: 1e-1, hex: 0x1f}", "train.seed=0042",
                            "train.epochs=010", "data.options.subset='0042'", "output.name='001'",
                            "train.eval_every=0o10"])
    assert from_cli.model.kwargs == from_file.model.kwargs
    assert (from_cli.train.seed, from_cli.train.epochs) == (42, 10)
    assert from_cli.data.options == {"subset": "0042"}
    assert (from_cli.output.name, from_cli.train.eval_every) == ("001", 8)
    with pytest.raises(ValueError, match=r"'optim.lr' must be a float, got '1e-3'"):
        config_from_dict({"model": {"name": "_tiny_test_mlp"}, "optim": {"lr": "1e-3"}})


@pytest.mark.parametrize("override, message", [
    ("optim.lr=.inf", "'optim.lr' must be a finite number"),
    ("optim.lr=1e999", "'optim.lr' must be a finite number"),
    ("agfn.graph_lr=.nan", "'agfn.graph_lr' must be a finite number"),
    ("data.std=[.nan, 1, 1]", r"'data.std\[0\]' must be a finite number"),
    ("train.seed=-1", "'train.seed' must be >= 0"),
    ("data.label_noise_seed=-1", "'data.label_noise_seed' must be >= 0"),
])
def test_non_finite_numbers_and_negative_seeds_are_refused(override, message):
    with pytest.raises(ValueError, match=message):
        load_config({"model": {"name": "_tiny_test_mlp"}}, [override])


def test_a_duplicate_key_in_a_recipe_file_is_an_error_naming_its_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("model:\n  name: _tiny_test_mlp\ntrain:\n  epochs: 3\n"
                    "optim:\n  lr: 0.1\ntrain:\n  batch_size: 8\n")
    with pytest.raises(ValueError, match=r"dup.yaml', line 7: invalid YAML: duplicate key "
                                         r"'train' \(first on line 3\)"):
        load_config(path)
    with pytest.raises(ValueError, match="override 'model.kwargs={a: 1, a: 2}'.*duplicate key"):
        parse_overrides(["model.kwargs={a: 1, a: 2}"])


def test_a_validation_error_from_a_recipe_file_names_the_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  name: face2nodez\n")
    with pytest.raises(ValueError, match=r"config file '.*r.yaml': config key 'model.name': "
                                         "unknown model 'face2nodez'"):
        load_config(path)
    path.write_text("model:\n  name: _tiny_test_mlp\n")
    with pytest.raises(ValueError, match=r"r.yaml' with the overrides: config key "
                                         "'train.batch_size' must be >= 1"):
        load_config(path, ["train.batch_size=0"])


def test_a_recipe_file_is_read_as_utf8_and_other_bytes_name_the_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes("model:\n  name: _tiny_test_mlp\noutput:\n  name: café\n".encode())
    assert load_config(path).output.name == "café"
    path.write_bytes("model:\n  name: _tiny_test_mlp\noutput:\n  name: café\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"config file '.*r.yaml': not UTF-8 text"):
        load_config(path)


def test_a_shipped_recipe_name_is_not_hidden_by_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "synthetic_face2nodes").mkdir()  # e.g. inside runs/, its run folder
    assert resolve_recipe("synthetic_face2nodes") == CONFIG_DIR / "synthetic_face2nodes.yaml"
    (tmp_path / "mine").mkdir()
    with pytest.raises(ValueError, match="unknown recipe 'mine': 'mine' is a directory"):
        resolve_recipe("mine")
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(FileNotFoundError, match="'folder.yaml' is a directory"):
        resolve_recipe("folder.yaml")


def test_is_override_wants_a_dotted_name_before_the_equals_sign():
    assert is_override("optim.lr=0.01") and is_override("model.kwargs.k = 9")
    assert is_override("output.name=a=b")
    assert not is_override("runs/lr=0.01/config.yaml")
    assert not is_override("my recipe=1.yaml") and not is_override("=3")


def test_save_and_reload_round_trip(tmp_path):
    cfg = load_config({"model": {"name": "_tiny_test_mlp", "kwargs": {"hidden": 8}}},
                      ["train.grad_clip=1.0", "output.name=x"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    # strings that read as numbers in YAML 1.2 but not in 1.1 are quoted when written
    cfg = load_config({"model": {"name": "_tiny_test_mlp",
                                 "kwargs": {"a": "1e3", "b": "08", "c": "0o17", "d": 1e-5}}},
                      ["output.name='0042'"])
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


TINY = {"model": {"name": "_tiny_test_mlp"}}


@pytest.mark.parametrize("override, message", [
    ("train.eval_every=0", "'train.eval_every' must be >= 1, got 0"),
    ("data.img_size=0", "'data.img_size' must be >= 1, got 0"),
    ("distributed.nproc=0", "'distributed.nproc' must be >= 1, got 0"),
    ("data.label_noise=1.0", r"'data.label_noise' must be in \[0, 1\), got 1.0"),
    ("train.label_smoothing=1.0", r"'train.label_smoothing' must be in \[0, 1\), got 1.0"),
    ("agfn.graph_lr=0", "'optim.lr' and 'agfn.graph_lr' must be > 0"),
    ("agfn.pretrain_epochs=-1", "'agfn.pretrain_epochs' must be >= 0, got -1"),
    ("optim.betas=[0.9, 1.0]", r"'optim.betas' must be two numbers in \[0, 1\)"),
    ("schedule.min_lr=-1e-5", r"'schedule.min_lr' must be in \[0, optim.lr"),
    ("agfn.sample_average=mean", "'agfn.sample_average' is 'mean'; valid: loss, output"),
    ("train.best_metric=f1", "'train.best_metric' is 'f1'; valid: overall_acc, mean_class_acc"),
])
def test_each_range_and_choice_check_names_its_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(TINY, [override])


def test_range_bounds_that_are_allowed():
    cfg = load_config(TINY, ["schedule.gamma=1", "data.label_noise=0", "schedule.min_lr=0",
                             "agfn.pretrain_epochs=0", "optim.betas=[0, 0.5]"])
    assert (cfg.schedule.gamma, cfg.data.label_noise, cfg.agfn.pretrain_epochs) == (1.0, 0.0, 0)


def test_values_are_checked_against_their_annotation():
    # an int in a float key widens to a float
    cfg = load_config(TINY, ["optim.lr=1", "schedule.gamma=1"])
    assert isinstance(cfg.optim.lr, float) and isinstance(cfg.schedule.gamma, float)
    with pytest.raises(ValueError, match=r"'train.epochs' must be an int, got True"):
        load_config(TINY, ["train.epochs=true"])
    with pytest.raises(ValueError, match=r"'data.mean' must be a list, got 'abc'"):
        load_config(TINY, ["data.mean=abc"])
    with pytest.raises(ValueError, match=r"'model.kwargs' must be a mapping, got 3"):
        load_config(TINY, ["model.kwargs=3"])
    with pytest.raises(ValueError, match=r"'output.name' must be a string, got 1.5; quote it"):
        load_config(TINY, ["output.name=1.5"])
    with pytest.raises(ValueError, match=r"unknown config key 'trainer'; valid keys in the top "
                                         r"level: model, data"):
        config_from_dict({"trainer": {}})


def test_none_is_an_empty_mapping_for_config_from_dict():
    assert config_from_dict(None) == Config()
    assert config_from_dict({**TINY, "output": None}).output == Config().output


def test_config_from_dict_copies_the_free_form_mappings():
    data = {"model": {"name": "_tiny_test_mlp", "kwargs": {"hidden": 8}}}
    cfg = config_from_dict(data)
    data["model"]["kwargs"]["hidden"] = 16
    assert cfg.model.kwargs == {"hidden": 8}


def test_apply_overrides_leaves_its_input_alone():
    data = {"model": {"name": "_tiny_test_mlp", "kwargs": {"hidden": 8}}}
    out = apply_overrides(data, ["model.kwargs.hidden=4"])
    assert out["model"]["kwargs"] == {"hidden": 4}
    assert data == {"model": {"name": "_tiny_test_mlp", "kwargs": {"hidden": 8}}}


def test_override_edge_cases():
    # an empty value is the empty string, not null
    assert parse_overrides(["output.name="]) == {"output": {"name": ""}}
    for item in ("optim..lr=1", ".lr=1", "optim.=1", "=1"):
        with pytest.raises(ValueError, match=rf"override '{re.escape(item)}' has an empty key"):
            parse_overrides([item])
    with pytest.raises(ValueError, match=r"override 'train.epochs.x=1' conflicts with an "
                                         r"earlier override"):
        parse_overrides(["train.epochs=3", "train.epochs.x=1"])


def test_an_empty_recipe_file_is_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n")
    assert read_yaml(path) == {}
    cfg = load_config(path, ["model.name=_tiny_test_mlp"])
    assert cfg.output.name == "empty" and cfg.train.epochs == Config().train.epochs


def test_a_missing_yml_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yml' does not exist"):
        resolve_recipe(tmp_path / "missing.yml")
