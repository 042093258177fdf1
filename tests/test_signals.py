import os
import signal
import threading

import pytest

from pyg_fer._signals import sigterm_as_exit


def test_sigterm_ends_a_command_through_systemexit_so_cleanups_run():
    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(SystemExit) as exit_, sigterm_as_exit():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            cleaned.append(True)
    assert exit_.value.code == 143 and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_as_exit_does_nothing_off_the_main_thread():
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def body():
        with sigterm_as_exit():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]
