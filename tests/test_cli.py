import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "engine"))
import _engine_tiny  # noqa: E402, F401  (registers the tiny test models)

from pyg_fer.cli import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_models_lists_public_registered_models(capsys):
    assert main(["models"]) == 0
    names = capsys.readouterr().out.split()
    assert "_tiny_test_mlp" not in names  # private test models stay hidden
    assert main(["models", "_tiny*"]) == 0
    assert capsys.readouterr().out.split() == []


def test_repeated_list_options_add_up_instead_of_replacing_each_other():
    from pyg_fer.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "r", "--set", "optim.lrr=3", "--set", "train.epochs=1"])
    assert args.set == ["optim.lrr=3", "train.epochs=1"]  # so the typo is still refused
    args = parser.parse_args(["explain", "ck", "img", "--method", "gradcam", "--method", "graph"])
    assert args.method == ["gradcam", "graph"]
    assert parser.parse_args(["explain", "ck", "img"]).method is None  # explain_images' default
    args = parser.parse_args(["weights", "--add", "a.json", "--add", "b.json"])
    assert args.add == ["a.json", "b.json"]


def test_version(capsys):
    from pyg_fer import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"pyg-fer {__version__}\n"


def test_recipes_lists_shipped_files(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "synthetic_face2nodes" in out and "face2nodes_rafdb_pretrained" in out


def test_config_errors_exit_2_with_the_key(capsys):
    assert main(["train", "synthetic_face2nodes", "optim.lrr=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'optim.lrr'" in err and "weight_decay" in err
    assert main(["train", "no_such_recipe"]) == 2
    assert "unknown recipe 'no_such_recipe'" in capsys.readouterr().err
    assert main(["train", "a", "b"]) == 2
    assert "unexpected argument 'b'" in capsys.readouterr().err
    # a recipe path with '=' in it is a path, not an override
    assert main(["train", "sweep/lr=0.01/recipe.yaml", "train.epochs=1"]) == 2
    assert "config file 'sweep/lr=0.01/recipe.yaml' does not exist" in capsys.readouterr().err
    assert main(["eval", "/nowhere/best.json"]) == 2
    assert "/nowhere/best.json" in capsys.readouterr().err
    assert main(["train", "synthetic_face2nodes", "train.device=gpu"]) == 2
    assert "device 'gpu' (config key 'train.device', or --device) is not a device" in \
        capsys.readouterr().err


def _tiny_recipe(tmp_path, model="_tiny_test_mlp"):
    try:
        from pyg_fer.data import build_dataset  # noqa: F401
    except ImportError:
        pytest.skip("pyg_fer.data.build_dataset is not in this checkout")
    path = tmp_path / "tiny.yaml"
    path.write_text(f"""
model: {{name: {model}, kwargs: {{img_size: 16{", hidden: 16" if model.startswith("_") else ""}}}}}
data:
  name: synthetic
  img_size: 16
  options: {{img_size: 16}}
  train_options: {{num_samples: 96}}
  eval_options: {{num_samples: 48}}
train: {{epochs: 2, batch_size: 16, device: cpu, progress: false}}
output: {{dir: {tmp_path / 'runs'}}}
""")
    return path


def test_train_eval_predict_round_trip(tmp_path, capsys):
    recipe = _tiny_recipe(tmp_path)
    assert main(["train", str(recipe), "optim.lr=0.01", "--set", "train.epochs=1"]) == 0
    run = tmp_path / "runs" / "tiny"
    assert json.loads((run / "metrics.jsonl").read_text())["epoch"] == 1
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    capsys.readouterr()
    assert main(["eval", str(run / "best.json"), "--tsne", "--out", str(tmp_path / "ev"),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["num_samples"] == 48 == sum(map(sum, report["confusion_matrix"]))
    assert f"{100 * report['overall_acc']:.2f}%" in out
    assert (tmp_path / "ev" / "tsne.png").is_file()
    # --split train evaluates the training images (train_options: 96), not an eval-sized
    # sample of them, and a train_options override counts.
    assert main(["eval", str(run / "best.json"), "--split", "train", "--out",
                 str(tmp_path / "ev_train"), "--device", "cpu"]) == 0
    assert "synthetic/train: 96 images" in capsys.readouterr().out
    assert main(["eval", str(run / "best.json"), "--split", "train", "--out",
                 str(tmp_path / "ev_train"), "--device", "cpu",
                 "data.train_options.num_samples=32"]) == 0
    assert "synthetic/train: 32 images" in capsys.readouterr().out
    # a published card has no config.yaml beside it: its own recipe says which data
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in ("best.json", "best.safetensors"):
        shutil.copy(run / name, shared / name)
    assert main(["eval", str(shared / "best.json"), "--device", "cpu"]) == 0
    assert "synthetic/test: 48 images" in capsys.readouterr().out
    assert (shared / "eval_best_test" / "report.json").is_file()
    card = json.loads((shared / "best.json").read_text())
    del card["config"]
    (shared / "best.json").write_text(json.dumps(card))
    assert main(["eval", str(shared / "best.json"), "--device", "cpu"]) == 2
    assert "no recipe in its card" in capsys.readouterr().err
    from PIL import Image

    img = tmp_path / "face.png"
    Image.new("RGB", (40, 30), (200, 120, 90)).save(img)
    assert main(["predict", str(run), str(img), "--device", "cpu", "--top", "2",
                 "--detector", "none"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{img} [0,0,40,30]: ") and line.count(" 0.") == 2
    probs = [float(tok) for tok in line.replace(",", " ").replace(")", " ").split()
             if tok.replace(".", "").isdigit() and "." in tok]
    assert len(probs) == 2 and probs[0] >= probs[1]
    not_image = tmp_path / "x.png"
    not_image.write_text("hello")
    assert main(["predict", str(run), str(not_image), "--device", "cpu", "--detector",
                 "none"]) == 1  # the run finishes; exit 1 says an input could not be read
    assert "x.png' is not an image" in capsys.readouterr().out


@pytest.mark.slow
def test_train_with_nproc_2_spawns_ddp(tmp_path, capsys):
    # spawned processes import only the package's own models: use a registered one
    recipe = _tiny_recipe(tmp_path, model="resnet18_fer")
    assert main(["train", str(recipe), "--nproc", "2", "distributed.backend=gloo"]) == 0
    run = tmp_path / "runs" / "tiny"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]  # written once, by rank 0
    report = json.loads((run / "report.json").read_text())
    assert report["num_samples"] == 48


def test_nproc_refuses_a_run_folder_before_starting_its_processes(tmp_path, capsys,
                                                                 monkeypatch):
    from _engine_tiny import held_by_another_process

    import pyg_fer.cli as cli

    monkeypatch.setattr(cli, "launch", lambda *a, **k: pytest.fail("processes were started"))
    recipe = _tiny_recipe(tmp_path, model="resnet18_fer")
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    args = ["train", str(recipe), "--nproc", "2", "distributed.backend=gloo"]
    with held_by_another_process(run / ".pyg-fer.lock", "elsewhere:4242\n"):
        assert main(args) == 2
    assert "is in use by another training process (elsewhere:4242)" in capsys.readouterr().err
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')  # a finished run
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--nproc", "2"]) == 2
    assert "cannot resume:" in capsys.readouterr().err


@pytest.mark.slow
def test_a_failing_process_under_nproc_is_an_error_line_after_its_own_traceback(tmp_path, capfd):
    recipe = _tiny_recipe(tmp_path, model="resnet18_fer")
    # 15 images a step cannot be split over 2 processes: each process refuses it
    assert main(["train", str(recipe), "--nproc", "2", "distributed.backend=gloo",
                 "train.batch_size=15"]) == 1
    err = capfd.readouterr().err
    assert "[pyg-fer] process of rank" in err and "must be divisible by the number of " \
        "processes (2)" in err
    last = err.rstrip().splitlines()[-1]
    assert re.fullmatch(r"pyg-fer train: error: the process of rank [01] failed \(its "
                        r"traceback is above\)", last), last


def _cli_subprocess(*args: str) -> subprocess.Popen:
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    # As from a terminal: a shell's background job (`make test &`) starts with SIGINT ignored,
    # and Python installs no KeyboardInterrupt handler then, so Ctrl-C would do nothing.
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=root,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_closed_pipe_ends_quietly_and_the_jit_warning_is_not_printed():
    proc = _cli_subprocess("-m", "pyg_fer", "recipes")
    proc.stdout.close()  # the reader is gone before the first line, like `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait() == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert "torch.jit.script" not in err


def test_cli_keeps_other_warnings_visible():
    proc = _cli_subprocess("-c", "import warnings, pyg_fer.cli; "
                                 "warnings.warn('another deprecation', FutureWarning)")
    _, err = proc.communicate()
    assert proc.returncode == 0 and "FutureWarning: another deprecation" in err.decode()


def test_ctrl_c_ends_quietly_with_status_130_and_the_run_folder_released(tmp_path):
    recipe = _tiny_recipe(tmp_path, model="resnet18_fer")  # registered in a fresh process
    proc = _cli_subprocess("-m", "pyg_fer", "train", str(recipe), "train.epochs=10000")
    run = tmp_path / "runs" / "tiny"
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").exists():  # an epoch done: inside the training loop
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    err = err.decode()
    assert proc.returncode == 130 and "pyg-fer train: interrupted" in err, err[-2000:]
    assert "Traceback" not in err and not (run / ".pyg-fer.lock").exists()
