import sys
from pathlib import Path

import pytest
import torch

# --import-mode=importlib puts no test folder on sys.path; the tiny models live in a plain module
# so that processes spawned by the DDP test can import them too.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _engine_tiny  # noqa: E402, F401  (registers the tiny test models)


@pytest.fixture(autouse=True)
def _one_thread():
    """Keep engine tests light on the shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
