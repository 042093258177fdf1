"""Writes ``fake_yunet.onnx``: a network with YuNet's input and outputs that "detects" red.

``cv2.FaceDetectorYN`` runs any ONNX network with an input named ``input`` (``1×3×H×W``, BGR,
0..255, padded to multiples of 32) and twelve outputs ``{cls,obj,bbox,kps}_{8,16,32}``; per
cell of each stride it decodes ``score = sqrt(cls * obj)``, a box centred at
``(cell + bbox[:2]) * stride`` of size ``exp(bbox[2:]) * stride`` and five landmarks at
``(cell + kps) * stride``. This stand-in scores each 32×32 cell by its mean red value (BGR
channel 2) and puts the box on the cell and the landmarks at its centre, so a pure red 32×32
square aligned to the grid is one "face" with score 1 — and only if the detector converts
RGB to BGR. The real YuNet cannot be downloaded here; this checks pyg-fer's wiring around
``cv2.FaceDetectorYN``. Regenerate (needs the ``onnx`` package) with
``python tests/inference/_fake_yunet.py``.
"""

from pathlib import Path

import torch
import torch.nn.functional as F

OUT = Path(__file__).with_name("fake_yunet.onnx")
NAMES = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)]


class FakeYuNet(torch.nn.Module):
    def forward(self, x):
        cls, bbox, kps = [], [], []
        for s in (8, 16, 32):
            red = (F.avg_pool2d(x, s)[:, 2:3] / 255.0).flatten(2).transpose(1, 2)
            score = red if s == 32 else red * 0
            zero = red * 0
            cls.append(score)
            bbox.append(torch.cat([zero + 0.5, zero + 0.5, zero, zero], 2))
            kps.append(torch.cat([zero + 0.5] * 10, 2))
        return (*cls, *cls, *bbox, *kps)


if __name__ == "__main__":
    torch.onnx.export(FakeYuNet(), torch.zeros(1, 3, 128, 160), str(OUT), input_names=["input"],
                      output_names=NAMES, dynamo=False, opset_version=11,
                      dynamic_axes={"input": {2: "h", 3: "w"}})
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
