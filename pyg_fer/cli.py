"""The ``pyg-fer`` command line: train, eval, predict, models, recipes, demo.

Examples::

    pyg-fer train synthetic_face2nodes train.epochs=5 --set optim.lr=3e-4
    pyg-fer train face2nodes_rafdb data.root=/data/RAF-DB --nproc 2
    torchrun --nproc-per-node 4 -m pyg_fer train face2nodes_rafdb data.root=/data/RAF-DB
    pyg-fer train --resume runs/face2nodes_rafdb
    pyg-fer eval runs/face2nodes_rafdb/best.json --tsne
    pyg-fer predict runs/face2nodes_rafdb/best.json photo.jpg clip.mp4 --out faces.jsonl
    pyg-fer models 'face2nodes*'
    pyg-fer demo
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# torch_geometric's import calls torch.jit.script, which recent torch deprecates with a
# FutureWarning on every run; the user did nothing to cause it. Only that warning is silenced,
# and only here (a library user keeps it); every other warning stays visible.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                        category=FutureWarning)

import torch  # noqa: E402
from torch.multiprocessing import ProcessRaisedException  # noqa: E402

from pyg_fer import __version__  # noqa: E402
from pyg_fer._signals import sigterm_as_exit  # noqa: E402
from pyg_fer.engine import evaluate, load_config, load_model, train  # noqa: E402
from pyg_fer.engine.checkpoint import read_card  # noqa: E402
from pyg_fer.engine.config import CONFIG_DIR, Config, is_override, list_recipes  # noqa: E402
from pyg_fer.engine.datasets import build_split  # noqa: E402
from pyg_fer.engine.distributed import launch  # noqa: E402
from pyg_fer.engine.report import write_report  # noqa: E402
from pyg_fer.engine.trainer import check_run_dir, resolve_device  # noqa: E402
from pyg_fer.models import list_models  # noqa: E402


def _split_positionals(items: Sequence[str]) -> tuple[str | None, list[str]]:
    """``key=value`` items (a dotted name before the ``=``) are overrides; the one other item is
    the recipe (a path may hold ``=``: ``runs/lr=0.01/config.yaml``)."""
    recipe, overrides = None, []
    for item in items:
        if is_override(item):
            overrides.append(item)
        elif recipe is None:
            recipe = item
        else:
            raise ValueError(f"unexpected argument '{item}': give one recipe, then key=value "
                             "overrides")
    return recipe, overrides


def _train_entry(recipe: str | None, overrides: list[str], resume: str | None) -> None:
    train(recipe, overrides=overrides, resume=resume)


def cmd_train(args: argparse.Namespace) -> int:
    recipe, overrides = _split_positionals(args.items)
    overrides += args.set or []
    resume = args.resume
    if resume is not None:
        run = Path(resume)
        if recipe is None:
            if not (run / "config.yaml").is_file():
                raise FileNotFoundError(f"cannot resume: '{run / 'config.yaml'}' does not exist")
            recipe = str(run / "config.yaml")
    cfg = load_config(recipe, overrides)  # validate before spawning anything
    nproc = args.nproc if args.nproc is not None else cfg.distributed.nproc
    if nproc > 1:
        check_run_dir(cfg, resume)  # what the processes would refuse, said once, before them
        try:
            launch(_train_entry, nproc, args=(recipe, overrides, resume))
        except ProcessRaisedException as err:  # the process printed its traceback already
            print(f"pyg-fer train: error: the process of rank {err.error_index} failed (its "
                  f"traceback is above)", file=sys.stderr)
            return 1
    else:
        _train_entry(recipe, overrides, resume)
    return 0


def _eval_dataset(cfg: Config, model: torch.nn.Module, split: str):
    """The recipe's ``split`` as the engine builds it, at the checkpoint's input size and
    normalisation, with the evaluation transform."""
    _, height, _ = model.cfg["input_size"]
    return build_split(cfg, split, train=False, img_size=height, mean=model.cfg["mean"],
                       std=model.cfg["std"])


def cmd_eval(args: argparse.Namespace) -> int:
    meta = read_card(args.checkpoint)
    card_path = Path(meta["_card_path"])
    recipe, overrides = _split_positionals(args.overrides)
    recipe = args.config or recipe
    overrides += args.set or []
    beside = card_path.parent / "config.yaml"
    if recipe is None and not beside.is_file():  # a published or cached card: its own recipe
        if not isinstance(meta.get("config"), dict):
            raise FileNotFoundError(
                f"no --config given, no '{beside}' next to the checkpoint and no recipe in its "
                f"card '{card_path}' to say which data to evaluate on")
        try:
            cfg = load_config(meta["config"], overrides)
        except ValueError as err:
            raise ValueError(f"the recipe in checkpoint card '{card_path}': {err}") from None
    else:
        cfg = load_config(recipe or beside, overrides)
    device = resolve_device(args.device)
    model = load_model(card_path, device=device)
    split = args.split or cfg.data.eval_split
    dataset = _eval_dataset(cfg, model, split)  # evaluate() checks its classes are the model's
    t0 = time.perf_counter()
    ev = evaluate(model, dataset, device=device, batch_size=args.batch_size,
                  num_workers=cfg.data.num_workers, return_features=args.tsne,
                  amp=device.type == "cuda")
    out = Path(args.out) if args.out else card_path.parent / f"eval_{card_path.stem}_{split}"
    files = write_report(
        out, ev, ev["confusion_matrix"], list(dataset.classes),
        info={"model": meta["model"]["name"], "checkpoint": str(card_path),
              "dataset": cfg.data.name, "split": split, "epoch": meta.get("epoch")},
        tsne=(ev["features"], ev["targets"]) if args.tsne else None)
    print(f"{cfg.data.name}/{split}: {ev['num_samples']} images in "
          f"{time.perf_counter() - t0:.1f} s | overall acc {100 * ev['overall_acc']:.2f}% | "
          f"mean class acc {100 * ev['mean_class_acc']:.2f}%")
    print(f"report: {files['report_md']}")
    return 0


def _record_line(record: Any, top: int) -> str:
    """One human-readable line per record for ``predict`` without ``--out``."""
    where = record.source if record.frame is None else \
        f"{record.source} frame {record.frame} ({record.time or 0:.2f} s)"
    if record.error is not None:
        return f"{where}: error: {record.error}"
    if record.box is None:
        return f"{where}: no face found"
    probs = sorted(record.probs.items(), key=lambda kv: -kv[1])[:top]
    box = ",".join(str(v) for v in record.box)
    return f"{where} [{box}]: {record.label} ({', '.join(f'{c} {p:.3f}' for c, p in probs)})"


def cmd_predict(args: argparse.Namespace) -> int:
    """Thin wrapper over :class:`pyg_fer.inference.Predictor`; exit 1 when an input failed."""
    try:
        from tqdm import tqdm

        from pyg_fer.inference import Predictor, RecordWriter, RunSummary

        predictor = Predictor.from_checkpoint(
            args.checkpoint, device=args.device, detector=args.detector,
            detector_model=args.detector_model, batch_size=args.batch_size, margin=args.margin)
        items = predictor.expand(args.inputs)
        total = predictor.count(items, args.stride)
    except ImportError as err:
        print(f"pyg-fer predict: error: {err}", file=sys.stderr)
        return 2
    writer = RecordWriter(args.out, predictor.class_names) if args.out else None
    summary = RunSummary()
    t0 = time.perf_counter()
    bar = tqdm(total=total, unit="img", disable=not sys.stderr.isatty(), leave=False)
    try:
        for record in predictor.run(items, stride=args.stride, annotate=args.annotate):
            summary.add(record)
            bar.update(summary.images + summary.frames - bar.n)
            if writer is not None:
                writer.write(record)
                if record.error is not None:
                    tqdm.write(f"pyg-fer predict: {record.error}", file=sys.stderr)
            else:
                print(_record_line(record, args.top), flush=True)
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    finally:
        bar.close()
    if writer is not None:
        writer.close()
    line = summary.line(time.perf_counter() - t0)
    if writer is not None:
        line += f" -> {args.out}"
    print(line, file=sys.stdout if writer is not None else sys.stderr)
    return 1 if summary.errors else 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a checkpoint to ONNX or a ``torch.export`` program; exit 2 on a usage error."""
    from pyg_fer.export import to_onnx, to_torch_export

    batch = args.batch if args.batch == "dynamic" else None
    if batch is None:
        try:
            batch = int(args.batch)
        except ValueError:
            print(f"pyg-fer export: error: --batch must be 'dynamic' or an int, got "
                  f"'{args.batch}'", file=sys.stderr)
            return 2
    try:
        model = load_model(args.checkpoint)
        suffix = ".onnx" if args.format == "onnx" else ".pt2"
        out = Path(args.out) if args.out else Path(read_card(args.checkpoint)["_card_path"]
                                                   ).with_suffix(suffix)
        if args.format == "onnx":
            path = to_onnx(model, out, batch=batch, opset=args.opset)
        else:
            path = to_torch_export(model, out, batch=batch)
    except (ImportError, FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"pyg-fer export: error: {err}", file=sys.stderr)
        return 2
    print(f"exported '{model.cfg['name']}' ({args.format}, batch {batch}) -> {path}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Explanation PNGs per face; exit 1 when an input failed, 2 on a usage error."""
    from pyg_fer.explain import explain_images
    from pyg_fer.inference import Predictor

    try:
        predictor = Predictor.from_checkpoint(
            args.checkpoint, device="cpu", detector=args.detector if args.detect else "none",
            detector_model=args.detector_model, margin=args.margin)
        # checks block, class, methods before reading any image; no --method: its default
        results = explain_images(
            predictor, args.inputs, args.out, block=args.block, target=args.target,
            size=args.size, top=args.top, node=args.node, epochs=args.epochs,
            **({"methods": args.method} if args.method else {}))
    except (ImportError, TypeError) as err:
        print(f"pyg-fer explain: error: {err}", file=sys.stderr)
        return 2
    errors = faces = 0
    for result in results:
        if result.error is not None:
            errors += 1
            print(f"pyg-fer explain: {result.error}", file=sys.stderr)
            continue
        faces += 1
        face = "" if result.face is None else f" face {result.face}"
        print(f"{result.source}{face}: {result.label} ({result.prob:.3f}), explained "
              f"{result.target} -> {', '.join(str(f) for f in result.files)}", flush=True)
    print(f"{faces} face{'s' * (faces != 1)} explained, {errors} input"
          f"{'s' * (errors != 1)} failed -> {args.out}", file=sys.stderr)
    return 1 if errors else 0


def cmd_models(args: argparse.Namespace) -> int:
    for name in list_models(args.pattern):
        print(name)
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    for name in list_recipes():
        print(f"{name}\t{CONFIG_DIR / (name + '.yaml')}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train Face2Nodes on SyntheticFER with the default recipe, report, print where it is."""
    t0 = time.perf_counter()
    overrides = ["output.name=demo", "output.overwrite=true", *args.overrides]
    result = train("synthetic_face2nodes", overrides=overrides)
    best = result["best"]
    n_classes = len(best["per_class_acc"])
    print()
    print(f"demo: Face2Nodes on SyntheticFER finished in {time.perf_counter() - t0:.0f} s "
          f"(training + evaluation + report)")
    print(f"      test accuracy {100 * best['overall_acc']:.2f}% overall, "
          f"{100 * best['mean_class_acc']:.2f}% mean class "
          f"({best['num_samples']} test images; chance {100 / n_classes:.1f}%), "
          f"best epoch {result['best_epoch']}")
    print(f"      report: {result['report']['report_md']}")
    print(f"      plots:  {result['report']['confusion_matrix_png']}, "
          f"{result['report']['learning_curves_png']}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    """List the pretrained-weights registry (and what is cached), or fetch one entry."""
    from pyg_fer.models import pretrained as pw

    for path in args.add or []:
        pw.register_weights(path)
    if args.download:
        for name in args.download:
            try:
                print(pw.download_weights(name, progress=sys.stderr.isatty()))
            except (OSError, ImportError) as err:  # a failed download, a missing extra
                print(f"pyg-fer weights: error: {err}", file=sys.stderr)
                return 2
        return 0
    names = pw.list_pretrained(args.pattern)
    if not names:
        print(f"no pretrained weights registered{'' if args.pattern == '*' else ' match'} "
              f"(pyg-fer ships none yet: docs/weights.md says why and how to add some); "
              f"cache: {pw.weights_cache_dir()}", file=sys.stderr)
        return 0
    for name in names:
        entry = pw.get_weights(name)
        size = f"{entry.size / 2**20:.1f} MiB" if entry.size else "? MiB"
        where = pw.cached_file(entry) if pw.is_cached(entry) else entry.source
        print(f"{name}\t{entry.model}\t{size}\t{entry.license}\t{entry.accuracy()}\t"
              f"{'cached' if pw.is_cached(entry) else 'not cached'}\t{where}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Write a run's best checkpoint as a registry entry's files; print the entry."""
    import json

    from pyg_fer.engine.publish import publish

    entry = publish(args.checkpoint, args.out_dir, license=args.license, name=args.name,
                    url_base=args.url_base, hf_hub_id=args.hf_hub_id, command=args.train_command,
                    description=args.description or "", default=args.default)
    print(json.dumps(entry.to_dict(), indent=2))
    print(f"pyg-fer publish: wrote {entry.card['weights']}, {entry.name}.json, "
          f"{entry.card['weights']}.sha256 and {entry.name}.entry.json to {args.out_dir}; "
          "paste the entry above into the 'entries' of pyg_fer/models/pretrained.json, list "
          f"'{Path(args.out_dir) / (entry.name + '.entry.json')}' in $PYG_FER_WEIGHTS, or "
          "register it with pyg_fer.models.register_weights", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyg-fer", description="Facial expression recognition with PyTorch Geometric.")
    parser.add_argument("--version", action="version", version=f"pyg-fer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    cmd = sub.add_parser("train", help="train a model from a recipe",
                         description="Train from a recipe (shipped name or YAML path) with "
                                     "key=value overrides. Under torchrun, trains with DDP.")
    cmd.add_argument("items", nargs="*", metavar="RECIPE|KEY=VALUE",
                     help="recipe name or YAML file, then dotted overrides like optim.lr=0.01")
    cmd.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                     help="more overrides (repeatable)")
    cmd.add_argument("--resume", metavar="RUN_DIR",
                     help="continue a run from its train_state.pt (recipe: its config.yaml)")
    cmd.add_argument("--nproc", type=int, help="spawn this many local DDP processes")
    cmd.set_defaults(func=cmd_train)

    cmd = sub.add_parser("eval", help="evaluate a checkpoint and write a report")
    cmd.add_argument("checkpoint", help="checkpoint .json/.safetensors, stem, or run folder")
    cmd.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="overrides of the run's config (e.g. data.root=...)")
    cmd.add_argument("--config", help="recipe naming the data (default: the run's config.yaml, "
                     "else the recipe held in the checkpoint's card)")
    cmd.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                     help="more overrides (repeatable)")
    cmd.add_argument("--split", help="dataset split (default: data.eval_split); the training "
                     "split is read with data.train_options, any other with data.eval_options")
    cmd.add_argument("--tsne", action="store_true", help="add a t-SNE plot of the features")
    cmd.add_argument("--out", help="report folder (default: next to the checkpoint)")
    cmd.add_argument("--batch-size", type=int, default=64)
    cmd.add_argument("--device", default="auto")
    cmd.set_defaults(func=cmd_eval)

    cmd = sub.add_parser(
        "predict", help="find faces in images, folders or videos and classify their expressions",
        description="One record per face: source, frame, time, box, detector score, class "
                    "probabilities, label. Exit status 1 when an input could not be read (the "
                    "others are still predicted), 2 on a usage or checkpoint error.")
    cmd.add_argument("checkpoint", help="checkpoint .json/.safetensors, stem, or run folder")
    cmd.add_argument("inputs", nargs="+", metavar="INPUT",
                     help="image or video files, or folders of them")
    cmd.add_argument("--detector", choices=("haar", "yunet", "none"), default="haar",
                     help="face detector; 'none': the inputs are face crops (default: haar)")
    cmd.add_argument("--detector-model", metavar="PATH",
                     help="YuNet ONNX file for --detector yunet (or another Haar cascade XML)")
    cmd.add_argument("--out", metavar="FILE.jsonl|FILE.csv",
                     help="write the records here (default: one line per record on stdout)")
    cmd.add_argument("--annotate", metavar="DIR",
                     help="write copies of the inputs with boxes and labels drawn into DIR")
    cmd.add_argument("--stride", type=int, default=1, help="predict every N-th video frame")
    cmd.add_argument("--margin", type=float, default=0.15,
                     help="crop margin per side, fraction of the face box (default: 0.15)")
    cmd.add_argument("--top", type=int, default=3, help="probabilities shown per face on stdout")
    cmd.add_argument("--batch-size", type=int, default=32, help="faces per forward pass")
    cmd.add_argument("--device", default="auto")
    cmd.set_defaults(func=cmd_predict)

    cmd = sub.add_parser(
        "weights", help="list pretrained weights (name, model, size, licence, accuracy, cache)",
        description="One line per registry entry: name, model, size, licence, accuracy, "
                    "cached or not, and where (cache path or source). Cache: $PYG_FER_HOME/"
                    "weights; PYG_FER_OFFLINE=1 forbids downloads.")
    cmd.add_argument("pattern", nargs="?", default="*", help="shell-style filter on the names")
    cmd.add_argument("--add", nargs="+", action="extend", metavar="ENTRY.json",
                     help="register these entry files (from pyg-fer publish) for this call; "
                          "$PYG_FER_WEIGHTS lists entry files for every command")
    cmd.add_argument("--download", nargs="+", action="extend", metavar="NAME",
                     help="fetch and verify these entries; print each cached card's path")
    cmd.set_defaults(func=cmd_weights)

    cmd = sub.add_parser(
        "publish", help="write a run's best checkpoint as a pretrained-weights entry",
        description="Copy a checkpoint into OUT_DIR as NAME.safetensors, NAME.json (card), "
                    "NAME.safetensors.sha256 and NAME.entry.json, and print the registry entry.")
    cmd.add_argument("checkpoint", help="run folder (its best checkpoint), card or weights file")
    cmd.add_argument("out_dir", metavar="OUT_DIR")
    cmd.add_argument("--license", required=True,
                     help="licence of the weights (e.g. MIT, or the training data's terms)")
    cmd.add_argument("--name", help="entry name MODEL.TAG (default: MODEL.<run folder name>)")
    where = cmd.add_mutually_exclusive_group()
    where.add_argument("--url-base", help="URL OUT_DIR will be served from (default: its "
                                          "file:// URL)")
    where.add_argument("--hf-hub-id", help="Hugging Face Hub repository instead of a URL")
    cmd.add_argument("--command", dest="train_command",
                     help="how the weights were trained and measured")
    cmd.add_argument("--description", help="one line for `pyg-fer weights`")
    cmd.add_argument("--default", action="store_true",
                     help="the model's pretrained=True entry")
    cmd.set_defaults(func=cmd_publish)

    cmd = sub.add_parser(
        "export", help="export a checkpoint to ONNX or a torch.export program",
        description="Writes the model in eval mode with the checkpoint card's class names, "
                    "input size and mean/std embedded (ONNX metadata_props / pt2 extra file). "
                    "Needs pip install 'pyg-fer[export]' for ONNX.")
    cmd.add_argument("checkpoint", help="checkpoint .json/.safetensors, stem, or run folder")
    cmd.add_argument("--format", choices=("onnx", "torch-export"), default="onnx")
    cmd.add_argument("--out", metavar="PATH",
                     help="output file (default: beside the card, .onnx or .pt2)")
    cmd.add_argument("--opset", type=int, default=18, help="ONNX opset (default: 18)")
    cmd.add_argument("--batch", default="dynamic",
                     help="'dynamic' (default: any batch size) or a fixed batch size")
    cmd.set_defaults(func=cmd_export)

    cmd = sub.add_parser(
        "explain", help="Grad-CAM, face graph and GNNExplainer figures for faces in images",
        description="Per face and method, PNGs in --out: Grad-CAM(++) heat maps over the face "
                    "as the model saw it, the face graph of an RDGCN block (edges coloured by "
                    "the RG-Conv gate, widths by Grad-CAM importance) with one node's "
                    "neighbourhood in blocks 1 to L, or GNNExplainer's edge mask. Runs on the "
                    "CPU. Exit status 1 when an input could not be read or held no face (the "
                    "others are still explained), 2 on a usage or checkpoint error.")
    cmd.add_argument("checkpoint", help="checkpoint .json/.safetensors, stem, or run folder")
    cmd.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files or folders of them")
    cmd.add_argument("--method", nargs="+", action="extend",  # repeated: all of them
                     choices=("gradcam", "gradcam++", "graph", "gnnexplainer"),
                     help="one or more figures per face (default: gradcam)")
    cmd.add_argument("--block", type=int, metavar="L",
                     help="RDGCN block (graph models) or ResNet stage (CNNs), 1-based "
                          "(default: the last)")
    cmd.add_argument("--class", dest="target", metavar="NAME",
                     help="class to explain, by name or index (default: the predicted one)")
    cmd.add_argument("--out", default="explain", metavar="DIR",
                     help="folder for the PNGs (default: ./explain)")
    cmd.add_argument("--detect", action="store_true",
                     help="find faces with --detector and explain each crop (default: each "
                          "image is one face crop)")
    cmd.add_argument("--detector", choices=("haar", "yunet"), default="haar",
                     help="face detector with --detect (default: haar)")
    cmd.add_argument("--detector-model", metavar="PATH", help="YuNet ONNX file (or Haar XML)")
    cmd.add_argument("--margin", type=float, default=0.15,
                     help="crop margin per side with --detect (default: 0.15)")
    cmd.add_argument("--size", type=int, default=224,
                     help="side in pixels of each face figure (default: 224)")
    cmd.add_argument("--top", type=int, metavar="N",
                     help="graph: only the edges of the N most important nodes; gnnexplainer: "
                          "only the N strongest edges")
    cmd.add_argument("--node", type=int,
                     help="graph: the node whose neighbourhood is drawn in blocks 1 to L "
                          "(default: the most important one in block L)")
    cmd.add_argument("--epochs", type=int, default=100,
                     help="gnnexplainer: optimisation epochs (default: 100)")
    cmd.set_defaults(func=cmd_explain)

    cmd = sub.add_parser("models", help="list registered models")
    cmd.add_argument("pattern", nargs="?", default="*")
    cmd.set_defaults(func=cmd_models)

    cmd = sub.add_parser("recipes", help="list shipped recipe files")
    cmd.set_defaults(func=cmd_recipes)

    cmd = sub.add_parser("demo", help="train + evaluate Face2Nodes on SyntheticFER (make demo)")
    cmd.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    cmd.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyg-fer`` and ``python -m pyg_fer``; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling a positional list at the first option: accept key=value overrides
    # given after options too (`train RECIPE --nproc 2 optim.lr=0.1`).
    bad = [e for e in extra if not is_override(e)]
    if bad or (extra and args.command not in ("train", "eval", "demo")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        if args.command == "train":
            args.items = list(args.items) + extra
        else:
            args.overrides = list(args.overrides) + extra
    try:
        with sigterm_as_exit():
            status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler below
    except (ValueError, FileNotFoundError) as err:
        print(f"pyg-fer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: the clean-ups ran on the way here (finally blocks); no traceback to read
        print(f"\npyg-fer {args.command}: interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, the status a shell reports for a process ended by it
    except BrokenPipeError:
        # The reader left (`pyg-fer recipes | head -3`): stop quietly, as `cat` would. Point
        # stdout at /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, the status a shell reports for a process ended by it
    return status


if __name__ == "__main__":
    sys.exit(main())
