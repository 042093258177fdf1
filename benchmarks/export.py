"""CPU latency (batch 1) and throughput (batch 32): onnxruntime vs torch eager vs torch.compile.

For each model (default ``resnet18_fer`` and ``face2nodes``, untrained weights, which cost the
same), the model is exported once with :func:`pyg_fer.export.to_onnx` (dynamic batch) and run
three ways on the same input:

- ``torch eager`` (the baseline): ``model(x)`` under ``torch.inference_mode()``;
- ``torch.compile``: ``torch.compile(model)`` (default mode), compiled during warm-up;
- ``onnxruntime``: ``InferenceSession.run`` on the exported file, CPU provider, ``--threads``
  intra-op threads (torch uses the same number).

Every round times each entry once (``_timing.interleaved_seconds``), so load from other
processes affects all sides alike; the table gives the median over rounds and the median of the
per-round ratio to torch eager (> 1: faster than eager).

Usage: ``python benchmarks/export.py [--models resnet18_fer face2nodes] [--img-size 112]
[--batch-sizes 1 32] [--repeats 5] [--threads 1] [--no-compile]``. Needs ``pyg-fer[export]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import format_table, interleaved_seconds, machine_line  # noqa: E402

import pyg_fer  # noqa: E402
from pyg_fer.export import to_onnx  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet18_fer", "face2nodes"])
    ap.add_argument("--img-size", type=int, default=112)
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = ap.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    print(machine_line() + f", onnxruntime {ort.__version__}, img {args.img_size}px")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            torch.manual_seed(0)
            model = pyg_fer.create_model(name, img_size=args.img_size).eval()
            path = to_onnx(model, Path(tmp) / f"{name}.onnx")
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
            compiled = None if args.no_compile else torch.compile(model)
            for batch in args.batch_sizes:
                x = torch.randn(batch, 3, args.img_size, args.img_size)
                xn = x.numpy()

                def eager(x=x, m=model):
                    with torch.inference_mode():
                        m(x)

                fns = {"torch eager": eager,
                       "onnxruntime": lambda xn=xn, s=session: s.run(None, {"images": xn})}
                if compiled is not None:
                    def comp(x=x, c=compiled):
                        with torch.inference_mode():
                            c(x)
                    fns["torch.compile"] = comp
                times = interleaved_seconds(fns, args.repeats, warmup=2,
                                            label=f"{name} batch {batch}")
                base = times["torch eager"]
                for key, ts in times.items():
                    med = statistics.median(ts)
                    ratio = statistics.median(b / t for b, t in zip(base, ts, strict=True))
                    rows.append([name, batch, key, f"{1000 * med:.1f}", f"{batch / med:.1f}",
                                 f"{ratio:.2f}x"])
    print(format_table(["model", "batch", "runtime", "ms / batch (median)", "images/s",
                        "speed vs torch eager"], rows))


if __name__ == "__main__":
    main()
