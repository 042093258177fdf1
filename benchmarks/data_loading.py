"""Images/s through each loader + the training transform, beside the model's time per image.

Every real loader reads a fixture written here in its exact on-disk format (RAF-DB aligned
100x100 JPEGs, FERPlus CSV pixels and PNG folders, AffectNet CSV + 256x256 JPEGs cropped to the
face box, an ImageFolder of PNGs), filled with SyntheticFER faces so JPEG/PNG decoding costs
what real faces cost. Each loader runs through a ``DataLoader`` with the Face2Nodes training
transform (224x224) for ``--workers`` = 0 (the baseline) and the given worker count; the table
prints the median of ``--repeats`` passes, the speed-up over the baseline, and the ratio to the
default model's training throughput (forward + backward) measured in the same run, so a ratio
above 1 means the model, not the data, is the bottleneck. A second table times SyntheticFER's
raw rendering of ``--synthetic-count`` images at 112x112 (the 10 000-in-a-minute target).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/data_loading.py            # ~3 min on 2 cores
    python benchmarks/data_loading.py --n 128 --synthetic-count 2000  # quick
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from pyg_fer.data import SyntheticFER, build_dataset, build_transform


def write_fixtures(root: str, n: int) -> dict[str, tuple[str, str, dict]]:
    """Write n-image datasets in each real format; returns name -> (dataset, root, options)."""
    src = SyntheticFER("train", num_samples=n, img_size=256, class_order="ferplus", seed=123)
    faces = [src[i][0] for i in range(n)]
    labels = src.targets
    out = {}
    # RAF-DB: aligned 100x100 JPEGs + label list (labels 1..7; contempt -> neutral here)
    r = os.path.join(root, "rafdb")
    os.makedirs(os.path.join(r, "EmoLabel"))
    os.makedirs(os.path.join(r, "Image", "aligned"))
    with open(os.path.join(r, "EmoLabel", "list_patition_label.txt"), "w") as f:
        for i, im in enumerate(faces):
            im.resize((100, 100)).save(os.path.join(r, "Image", "aligned",
                                                    f"train_{i:05d}_aligned.jpg"), quality=90)
            f.write(f"train_{i:05d}.jpg {min(labels[i], 6) + 1}\n")
    out["rafdb"] = ("rafdb", r, {})
    # FERPlus CSV: 48x48 gray pixel strings + votes
    fp = os.path.join(root, "ferplus")
    os.makedirs(fp)
    with open(os.path.join(fp, "fer2013.csv"), "w") as fo, \
            open(os.path.join(fp, "fer2013new.csv"), "w") as fn:
        fo.write("emotion,pixels,Usage\n")
        fn.write("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,"
                 "contempt,unknown,NF\n")
        for i, im in enumerate(faces):
            px = np.asarray(im.convert("L").resize((48, 48))).ravel()
            fo.write(f"0,{' '.join(map(str, px.tolist()))},Training\n")
            votes = [0] * 10
            votes[labels[i]] = 10
            fn.write(f"Training,fer{i:07d}.png," + ",".join(map(str, votes)) + "\n")
    out["ferplus (csv)"] = ("ferplus", fp, {"layout": "csv"})
    # FERPlus folders: 48x48 gray PNGs + headerless label.csv
    ff = os.path.join(root, "ferplus_folders", "FER2013Train")
    os.makedirs(ff)
    with open(os.path.join(ff, "label.csv"), "w", newline="") as f:
        w = csv.writer(f)
        for i, im in enumerate(faces):
            im.convert("L").resize((48, 48)).save(os.path.join(ff, f"fer{i:07d}.png"))
            votes = [0] * 10
            votes[labels[i]] = 10
            w.writerow([f"fer{i:07d}.png", "(0, 0, 48, 48)", *votes])
    out["ferplus (folders)"] = ("ferplus", os.path.dirname(ff), {"layout": "folders"})
    # AffectNet: 256x256 JPEGs, CSV list, cropped to the face box
    a = os.path.join(root, "affectnet")
    os.makedirs(os.path.join(a, "Manually_Annotated_file_lists"))
    os.makedirs(os.path.join(a, "Manually_Annotated_Images", "1"))
    code = [0, 1, 3, 2, 6, 5, 4, 7]  # FERPlus order -> AffectNet codes
    with open(os.path.join(a, "Manually_Annotated_file_lists", "training.csv"), "w") as f:
        f.write("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
                "expression,valence,arousal\n")
        lm = ";".join(["100.0"] * 136)
        for i, im in enumerate(faces):
            im.save(os.path.join(a, "Manually_Annotated_Images", "1", f"{i}.jpg"), quality=90)
            f.write(f"1/{i}.jpg,24,24,208,208,{lm},{code[labels[i]]},0.0,0.0\n")
    out["affectnet (crop)"] = ("affectnet", a, {"num_classes": 8, "crop_face": True})
    # ImageFolder of 112x112 PNGs
    g = os.path.join(root, "folder")
    for i, im in enumerate(faces):
        d = os.path.join(g, "train", src.classes[labels[i]])
        os.makedirs(d, exist_ok=True)
        im.resize((112, 112)).save(os.path.join(d, f"{i}.png"))
    out["imagefolder (png)"] = ("imagefolder", g, {})
    out["synthetic (render)"] = ("synthetic", None, {"num_samples": n, "img_size": 112})
    cache = os.path.join(root, "cache")
    out["synthetic (cache)"] = ("synthetic", None, {"num_samples": n, "img_size": 112,
                                                    "cache_dir": cache})
    return out


def loader_rate(ds, workers: int, batch_size: int, repeats: int) -> float:
    dl = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                    persistent_workers=workers > 0, drop_last=False)
    rates = []
    for k in range(repeats + 1):
        t = time.perf_counter()
        n = sum(len(y) for _, y in dl)
        if k:  # the first pass warms up workers and file caches
            rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def model_rate(img_size: int, batch_size: int, repeats: int) -> tuple[str, float]:
    import pyg_fer

    names = pyg_fer.list_models("face2nodes*")
    if names:
        name = names[0]
        model = pyg_fer.create_model(name, num_classes=7)
    else:
        from torchvision.models import resnet18

        name, model = "resnet18 (stand-in: no face2nodes model registered)", resnet18(num_classes=7)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 3, img_size, img_size)
    y = torch.randint(0, 7, (batch_size,))
    times = []
    for k in range(repeats + 1):
        t = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if k:
            times.append(time.perf_counter() - t)
    return name, batch_size / statistics.median(times)


def _stack_images(batch):
    return np.stack([np.asarray(im) for im, _ in batch])


def synthetic_render_rate(count: int, img_size: int, workers: int) -> float:
    ds = SyntheticFER("train", num_samples=count, img_size=img_size)
    dl = DataLoader(ds, batch_size=256, num_workers=workers,
                    collate_fn=_stack_images)
    t = time.perf_counter()
    n = sum(len(x) for x in dl)
    return n / (time.perf_counter() - t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="images per fixture dataset")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--synthetic-count", type=int, default=10_000)
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, batch {args.batch_size}, transform: face2nodes train "
          f"{args.img_size}px")
    name, m_rate = model_rate(args.img_size, 16, args.repeats)
    print(f"model: {name}: {m_rate:.1f} img/s training (forward+backward, batch 16)")
    tf = build_transform(True, img_size=args.img_size)
    with tempfile.TemporaryDirectory() as root:
        t = time.perf_counter()
        fixtures = write_fixtures(root, args.n)
        print(f"fixtures: {args.n} images per dataset written in {time.perf_counter() - t:.1f} s")
        print(f"\n| loader | img/s, 0 workers (baseline) | img/s, {args.workers} workers | "
              f"speed-up | loader / model |")
        print("|---|---|---|---|---|")
        for label, (dname, droot, opts) in fixtures.items():
            ds = build_dataset(dname, droot, "train", transform=tf, **opts)
            r0 = loader_rate(ds, 0, args.batch_size, args.repeats)
            rw = loader_rate(ds, args.workers, args.batch_size, args.repeats)
            print(f"| {label} | {r0:.0f} | {rw:.0f} | {rw / r0:.2f}x | {rw / m_rate:.1f}x |")
    if args.synthetic_count:
        r1 = synthetic_render_rate(min(args.synthetic_count, 1000), 112, 0)
        rw = synthetic_render_rate(args.synthetic_count, 112, args.workers)
        print(f"\n| SyntheticFER raw render, 112x112 | img/s | time for {args.synthetic_count} |")
        print("|---|---|---|")
        print(f"| 0 workers (baseline, {min(args.synthetic_count, 1000)} images) | {r1:.0f} | "
              f"{args.synthetic_count / r1:.1f} s (extrapolated) |")
        print(f"| {args.workers} workers | {rw:.0f} | {args.synthetic_count / rw:.1f} s "
              f"({rw / r1:.2f}x) |")


if __name__ == "__main__":
    main()
