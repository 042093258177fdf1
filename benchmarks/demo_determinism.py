"""Are the demo model's trained weights bit-identical from run to run on the CPU?

The pretrained-weights registry can only ship an entry for the ``make demo`` model if every
``make demo`` writes the same ``best.safetensors`` (same SHA-256). This script trains the demo's
architecture (Face2Nodes, 48 px, 16 nodes, D = 128, 4 blocks; Adam) for a few steps on fixed
random batches, twice with one torch thread and once with two, and prints the SHA-256 of the
weights after each run. ~1 min on a shared 2-core CPU::

    PYTHONPATH=. python benchmarks/demo_determinism.py
"""

from __future__ import annotations

import argparse
import hashlib

import torch

import pyg_fer


def train_hash(threads: int, steps: int = 5) -> str:
    """SHA-256 of the weights after ``steps`` Adam steps with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = pyg_fer.create_model("face2nodes", img_size=48, grid_size=4, embed_dim=128, depth=4)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.rand(32, 3, 48, 48, generator=g)
        y = torch.randint(0, 7, (32,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    digest = hashlib.sha256()
    for value in model.state_dict().values():
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="Adam steps per run (default: 5)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error(f"--steps must be >= 1, got {args.steps}")
    runs = [("1 thread", train_hash(1, args.steps)), ("1 thread, again", train_hash(1, args.steps)),
            ("2 threads", train_hash(2, args.steps))]
    print(f"torch {torch.__version__}")
    print("| run | SHA-256 of the weights (first 16 hex) |")
    print("|---|---|")
    for label, h in runs:
        print(f"| {label} | {h[:16]} |")
    print(f"same thread count, identical: {runs[0][1] == runs[1][1]}; "
          f"1 vs 2 threads, identical: {runs[0][1] == runs[2][1]}")


if __name__ == "__main__":
    main()
