"""Video decoding against a stand-in OpenCV: where a short video becomes an error."""

import types

import numpy as np
import pytest

import pyg_fer.inference.sources as sources
from pyg_fer.inference.sources import VideoCutShort, video_frames


class _Capture:
    """A ``cv2.VideoCapture`` whose file decodes ``decoded`` frames and declares ``declared``."""

    FRAME_COUNT, FPS, POS_MSEC = 7, 5, 0

    def __init__(self, decoded, declared):
        self.decoded, self.declared, self.position = decoded, declared, 0

    def isOpened(self):  # noqa: N802 -- OpenCV's name
        return True

    def get(self, prop):
        return {self.FRAME_COUNT: float(self.declared), self.FPS: 10.0, self.POS_MSEC: 0.0}[prop]

    def grab(self):
        if self.position >= self.decoded:
            return False
        self.position += 1
        return True

    def read(self):
        if not self.grab():
            return False, None
        return True, np.full((2, 2, 3), self.position - 1, np.uint8)

    def release(self):
        pass


def _fake_cv2(decoded, declared):
    return types.SimpleNamespace(
        VideoCapture=lambda path: _Capture(decoded, declared),
        CAP_PROP_FRAME_COUNT=_Capture.FRAME_COUNT, CAP_PROP_FPS=_Capture.FPS,
        CAP_PROP_POS_MSEC=_Capture.POS_MSEC, COLOR_BGR2RGB=4,
        cvtColor=lambda bgr, code: bgr[:, :, ::-1])


# The margin is max(1, declared // 100) frames: 2 of 200, 1 of 50 (declared // 100 = 0).
@pytest.mark.parametrize("declared, decoded, cut", [
    (200, 198, False), (200, 197, True), (50, 49, False), (50, 48, True),
    (0, 3, False),  # a container that declares no count
])
def test_a_video_is_cut_short_only_past_the_margin(monkeypatch, declared, decoded, cut):
    monkeypatch.setattr(sources, "import_cv2", lambda purpose: _fake_cv2(decoded, declared))
    seen = []
    frames = video_frames("clip.mp4", stride=1, keep_all=False)
    if cut:
        with pytest.raises(VideoCutShort, match=f"'clip.mp4': decoding stopped at frame "
                                                f"{decoded} of the {declared} ") as err:
            for index, *_ in frames:
                seen.append(index)
        assert err.value.frame == decoded
    else:
        seen = [index for index, *_ in frames]
    assert seen == list(range(decoded))  # every decoded frame comes before the error
