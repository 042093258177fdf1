"""Regenerate the figures of docs/explain.md.

    PYTHONPATH=. OMP_NUM_THREADS=1 python docs/img/explain/make_figures.py runs/demo/best.json \
        [--agfn runs/agfn_small/best.json] [--out docs/img/explain]

CKPT is the Face2Nodes checkpoint `make demo` trains (48 px, 4×4 nodes, 4 RDGCN blocks).
Faces: SyntheticFER test faces at the demo's settings (the first face of each listed class
that the model gets right) and, through `--detect`, the astronaut of scikit-image. The
figures are written by `pyg-fer explain` itself; `--agfn` adds the batch-graph thumbnail of
an AGFN checkpoint over 32 SyntheticFER test faces.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from pyg_fer.cli import main as cli
from pyg_fer.data import SyntheticFER
from pyg_fer.engine import load_model
from pyg_fer.explain import batch_graph, draw_batch_graph
from pyg_fer.inference import Predictor

CLASSES = ("surprise", "anger")


def faces(ckpt: str, folder: Path) -> list[str]:
    predictor = Predictor.from_checkpoint(ckpt, device="cpu", detector="none")
    data = SyntheticFER(split="test", num_samples=200, img_size=48, min_intensity=0.4)
    paths = []
    for name in CLASSES:
        for i in range(len(data)):
            image, label = data[i]
            if data.classes[label] != name:
                continue
            record = predictor.predict(image)[0]
            if record.label == name:
                path = folder / f"synthetic_{name}.png"
                image.save(path)
                paths.append(str(path))
                print(f"{path.name}: SyntheticFER test #{i}, predicted {record.label} "
                      f"({record.probs[name]:.2f})")
                break
    return paths


def block_sheet(ckpt: str, path: Path, rows: int = 5, side: int = 64) -> None:
    """Grad-CAM at blocks 1-4 for the first ``rows`` SyntheticFER test faces (one row each:
    the face as the model saw it, then blocks 1, 2, 3, 4)."""
    import numpy as np

    from pyg_fer.explain import grad_cam
    from pyg_fer.explain._plot import denormalise, overlay_heatmap, write_png

    predictor = Predictor.from_checkpoint(ckpt, device="cpu", detector="none")
    data = SyntheticFER(split="test", num_samples=200, img_size=48, min_intensity=0.4)
    sheet = []
    for i in range(rows):
        x = torch.from_numpy(predictor.transform(data[i][0]))[None]
        face = denormalise(x, predictor.mean, predictor.std, side)
        maps = [grad_cam(predictor.model, x, block=b)[0][0] for b in range(1, 5)]
        sheet.append(np.concatenate([face] + [overlay_heatmap(face, m) for m in maps], 1))
    write_png(path, np.concatenate(sheet, 0))
    print(f"{path}: Grad-CAM of the predicted class at blocks 1-4, test faces 0-{rows - 1}")


def run(args: list[str]) -> None:
    print("pyg-fer " + " ".join(args))
    status = cli(args)
    if status != 0:
        raise SystemExit(f"pyg-fer explain exited with {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--agfn", help="an AGFN checkpoint for the batch-graph thumbnail")
    parser.add_argument("--out", default=str(Path(__file__).parent))
    args = parser.parse_args()
    out = args.out
    block_sheet(args.checkpoint, Path(out) / "gradcam_blocks.png")
    with tempfile.TemporaryDirectory() as tmp:
        paths = faces(args.checkpoint, Path(tmp))
        base = ["explain", args.checkpoint, *paths, "--size", "192", "--out", out]
        run(base + ["--method", "gradcam", "gradcam++"])
        run(base + ["--method", "graph", "--top", "4", "--block", "4"])
        run(base + ["--method", "gnnexplainer", "--top", "30", "--block", "4"])
        from PIL import Image
        from skimage import data as skdata

        astro = Path(tmp) / "astronaut.png"
        Image.fromarray(skdata.astronaut()).save(astro)
        run(["explain", args.checkpoint, str(astro), "--detect", "--size", "192", "--out", out,
             "--method", "gradcam", "graph", "--top", "4"])
    if args.agfn:
        model = load_model(args.agfn, device="cpu")
        size = model.cfg["input_size"][1]
        data = SyntheticFER(split="test", num_samples=32, img_size=size)
        predictor = Predictor(model, detector="none")
        images = torch.stack([torch.from_numpy(predictor.transform(data[i][0]))
                              for i in range(len(data))])
        labels = [data[i][1] for i in range(len(data))]
        edges, prob = batch_graph(model, images, seed=0)
        path = draw_batch_graph(edges, labels, Path(out) / "agfn_batch_graph.png",
                                class_names=data.classes, size=320)
        same = sum(labels[j] == labels[i] for j, i in edges.t().tolist())
        print(f"{path}: {edges.size(1)} sampled edges of {32 * 31}, {same} within a class; "
              f"mean P {float(prob.sum() / (32 * 31)):.3f}")


if __name__ == "__main__":
    main()
