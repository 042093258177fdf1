"""Model complexity against Face2Nodes' Table 2: parameters and multiply-adds at 224×224.

Multiply-adds are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one eval-mode
forward of a single image (it counts matrix products and convolutions, including the k-NN
distance products, as 2 FLOPs per multiply-add; elementwise ops, BatchNorm, scatter and top-k
are not counted). The paper's "FLOPs" are multiply-adds (its 3.06 G is ResNet-18's 1.82 G plus
the graph part), so the table prints G multiply-adds.

Prints:
1. every registered model: params (M), G multiply-adds, and the paper's Table 2 figures;
2. Face2Nodes per part (embedder, one RDGCN block, all blocks, head);
3. the MSF²PE 1×1 widths C'_s that the paper leaves open, each reading's total beside 36.58 M.

Usage: ``python benchmarks/complexity.py [--img-size 224] [--models face2nodes resnet18_fer]``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import format_table as table  # noqa: E402

import pyg_fer  # noqa: E402

PAPER = {"face2nodes": (36.58, 3.06)}  # Table 2: params (M), "FLOPs" (G multiply-adds)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(model: nn.Module, img_size: int) -> tuple[int, dict[str, int]]:
    """Total multiply-adds of one forward and the per-module totals (FlopCounterMode / 2)."""
    model.eval()
    x = torch.randn(1, 3, img_size, img_size)
    counter = FlopCounterMode(display=False, depth=None)
    with torch.no_grad(), counter:
        model(x)
    # Keys are "<ClassName>.<qualified module name>"; keep the qualified name.
    per_module = {
        name.partition(".")[2]: sum(v.values()) // 2
        for name, v in counter.get_flop_counts().items()
        if "." in name
    }
    return counter.get_total_flops() // 2, per_module


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--models", nargs="*", default=None, help="default: all registered")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    names = args.models or pyg_fer.list_models()

    rows: list[list[object]] = []
    parts = None
    for name in names:
        model = pyg_fer.create_model(name)
        macs, per_module = count_macs(model, args.img_size)
        paper = PAPER.get(name, ("-", "-"))
        rows.append([name, f"{count_params(model) / 1e6:.2f}", f"{macs / 1e9:.3f}", *paper])
        if name == "face2nodes":
            parts = (model, per_module)
    print(f"## Complexity at {args.img_size}x{args.img_size} (torch {torch.__version__})\n")
    print(table(["model", "params (M)", "G mult-adds", "paper params (M)", "paper G"], rows))

    if parts is not None:
        model, per_module = parts
        block = model.blocks[0]
        fc_macs = per_module.get("blocks.0.fc_in", 0) + per_module.get("blocks.0.fc_out", 0)
        ffn_macs = per_module.get("blocks.0.ffn", 0)
        block_macs = per_module.get("blocks.0", 0)
        part_rows = [
            ["embedder (MSF2PE)", count_params(model.embed), per_module.get("embed", 0)],
            ["  of which ResNet-18 trunk",
             count_params(model.embed.trunk), per_module.get("embed.trunk", 0)],
            ["one RDGCN block", count_params(block), block_macs],
            ["  F_in + F_out", count_params(block.fc_in) + count_params(block.fc_out), fc_macs],
            # The block may run the conv through its dense path (not conv.forward), so the
            # conv's share is the block's total minus the FC layers and the FFN.
            ["  graph conv + k-NN distances", count_params(block.conv),
             block_macs - fc_macs - ffn_macs],
            ["  FFN", count_params(block.ffn), ffn_macs],
            [f"all {len(model.blocks)} blocks", count_params(model.blocks),
             sum(per_module.get(f"blocks.{i}", 0) for i in range(len(model.blocks)))],
            ["head", count_params(model.head), per_module.get("head", 0)],
        ]
        print("\n## face2nodes by part\n")
        print(table(
            ["part", "params (M)", "G mult-adds"],
            [[p, f"{n / 1e6:.3f}", f"{m / 1e9:.4f}"] for p, n, m in part_rows],
        ))

        print("\n## MSF2PE 1x1 widths C'_s (open in the paper) vs Table 2's 36.58 M\n")
        width_rows = []
        for label, sc in [("C'_s = C_s (64,128,256,512)", None), ("C'_s = 64 (default)", 64),
                          ("C'_s = 128", 128), ("C'_s = 256", 256), ("C'_s = 512", 512)]:
            m = pyg_fer.create_model("face2nodes", stage_channels=sc)
            n = count_params(m)
            macs, _ = count_macs(m, args.img_size)
            width_rows.append([label, f"{n / 1e6:.2f}", f"{(n / 1e6 - 36.58):+.2f}",
                               f"{macs / 1e9:.3f}"])
        print(table(["reading", "params (M)", "vs 36.58 M", "G mult-adds"], width_rows))


if __name__ == "__main__":
    main()
