"""A light body for the tests that stop ``launch`` (its processes import nothing heavy)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def sleeper_worker(out_dir: str) -> None:
    """Say this process is up, wait, and clean up when stopped."""
    out = Path(out_dir)
    rank = os.environ["RANK"]
    try:
        (out / f"rank{rank}.pid").write_text(str(os.getpid()))
        time.sleep(600)
    finally:
        (out / f"rank{rank}.cleaned").write_text("")


def ignore_sigterm_and_wait(ready, terminated) -> None:
    """A process that survives SIGTERM (a rank stuck in a collective), saying it got one."""
    signal.signal(signal.SIGTERM, lambda signum, frame: terminated.set())
    ready.set()
    while True:
        time.sleep(600)
