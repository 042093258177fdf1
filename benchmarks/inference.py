"""Faces per second through ``pyg_fer.inference.Predictor``, end to end and model only.

For each model (default ``resnet18_fer`` and ``face2nodes`` at 224×224, the size of the
shipped RAF-DB / FERPlus / AffectNet recipes; untrained weights, which cost the same) and each
batch size (default 1 and 32), ``--faces`` face photographs (scikit-image's astronaut, 512×512
JPEG files, one face each) are timed three ways on the same faces:

- ``end to end``: ``Predictor.predict(files)`` — JPEG decode, Haar detection, square crop, the
  checkpoint's eval transform, the model in batches of ``batch``, softmax, records;
- ``pre-processing``: the same without the model (decode, detect, crop, transform), once per
  model (it does not depend on the batch size);
- ``model only`` (the baseline): the model's forward pass over the already preprocessed crops
  in batches of ``batch``, under ``torch.inference_mode()``.

Every round times every entry once (``_timing.interleaved_seconds``), so load from other
processes on a shared machine affects all sides of a ratio alike; the table gives medians over
rounds and, per model and batch size, the median of the per-round ratio of faces/s to the model
alone. The predictor is built from a checkpoint saved by ``save_checkpoint`` and loaded by
``Predictor.from_checkpoint``, as a user's would be.

Usage: ``python benchmarks/inference.py [--models resnet18_fer face2nodes] [--img-size 224]
[--batch-sizes 1 32] [--faces 32] [--repeats 3] [--warmup 1] [--threads 2] [--device auto]``.
Needs ``pyg-fer[predict]`` (OpenCV) and scikit-image (the photograph).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _steps import resolve_device  # noqa: E402
from _timing import format_table, interleaved_seconds, machine_line  # noqa: E402

from pyg_fer.engine import save_checkpoint  # noqa: E402
from pyg_fer.inference import Predictor  # noqa: E402
from pyg_fer.inference.sources import expand_inputs, iter_frames  # noqa: E402
from pyg_fer.models import create_model  # noqa: E402

BASELINE = "model only"


def _photos(folder: Path, n: int) -> list[Path]:
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut())
    paths = []
    for i in range(n):
        path = folder / f"face_{i:03d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def _preprocess(predictor: Predictor, files: list[Path]) -> list[torch.Tensor]:
    crops = []
    for frame in iter_frames(expand_inputs(files)):
        crops += predictor._prepare(frame, keep_image=False).crops
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet18_fer", "face2nodes"])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--faces", type=int, default=32, help="face photos per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device, parser)
    # the photos and one checkpoint per model: removed when the run ends, however it ends
    with tempfile.TemporaryDirectory(prefix="pyg_fer_bench_inference_") as tmp:
        _run(args, device, Path(tmp))


def _run(args: argparse.Namespace, device: torch.device, work: Path) -> None:
    files = _photos(work, args.faces)

    fns = {}
    for name in args.models:
        model = create_model(name, num_classes=7, img_size=args.img_size)
        save_checkpoint(model, work / name / "best")
        del model
        for bs in args.batch_sizes:
            pred = Predictor.from_checkpoint(work / name, device=device, batch_size=bs)
            crops = _preprocess(pred, files)
            if len(crops) != args.faces:
                raise RuntimeError(f"expected {args.faces} faces, the detector found "
                                   f"{len(crops)}")

            def e2e(pred=pred):
                recs = pred.predict(files)
                assert len(recs) == len(files)

            fns[(name, bs, "end to end")] = e2e
            fns[(name, bs, BASELINE)] = lambda pred=pred, crops=crops: pred.classify(crops)
        # the same for every batch size: once per model
        fns[(name, "-", "pre-processing")] = lambda pred=pred: _preprocess(pred, files)

    print(f"# {machine_line()}, device {device}, {args.faces} faces, {args.img_size} px, "
          f"median of {args.repeats} interleaved rounds after {args.warmup} warm-up\n",
          flush=True)
    times = interleaved_seconds(fns, args.repeats, warmup=args.warmup, label="timing")
    rows = []
    for (name, bs, kind), t in times.items():
        ratio = "-"
        if (name, bs, BASELINE) in times:
            base = times[(name, bs, BASELINE)]
            ratio = f"{statistics.median(b / x for x, b in zip(t, base, strict=True)):.2f}"
        rows.append([name, bs, kind, f"{args.faces / statistics.median(t):.1f}",
                     f"{statistics.median(t) * 1e3 / args.faces:.1f}", ratio])
    print()
    print(format_table(["model", "batch", "what", "faces/s", "ms/face",
                        f"faces/s ÷ {BASELINE}"], rows))


if __name__ == "__main__":
    main()
