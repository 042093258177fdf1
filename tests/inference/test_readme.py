"""The README's five-line inference example runs as written."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyg_fer.engine import save_checkpoint

from .conftest import tiny_model

cv2 = pytest.importorskip("cv2")
README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text[text.index("## Predict on photos and videos"):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("```", start)]


def test_readme_example_runs(tmp_path, monkeypatch, astronaut, capsys):
    code = _example()
    assert len(code.strip().splitlines()) == 5
    monkeypatch.chdir(tmp_path)
    save_checkpoint(tiny_model(), tmp_path / "runs" / "demo" / "best")
    Image.fromarray(astronaut).save("photo.jpg")
    small = np.ascontiguousarray(astronaut[::2, ::2, ::-1])  # 256×256 BGR
    writer = cv2.VideoWriter("clip.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (256, 256))
    for _ in range(12):
        writer.write(small)
    writer.release()
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "('photo.jpg', None, (" in out and "('clip.mp4', 10, (" in out
    lines = (tmp_path / "faces.jsonl").read_text().splitlines()
    assert len(lines) == 4  # the photo, frames 0, 5 and 10
