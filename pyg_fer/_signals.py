"""Process signals, shared by the command line and the processes ``--nproc`` spawns."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """A ``kill PID`` (SIGTERM, e.g. a pre-empted job) ends the process through ``SystemExit``
    (status 143), so that ``finally`` blocks run: partial downloads and temporary outputs are
    removed and the run folder is released, as for Ctrl-C. Only the main thread can install a
    handler; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
