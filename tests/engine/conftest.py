import sys
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path; the tiny models live in a plain module
# so that processes spawned by the DDP test can import them too.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _engine_tiny  # noqa: E402, F401  (registers the tiny test models)


@pytest.fixture(autouse=True)
def _engine_tests_use_one_thread(one_thread):
    """Keep engine tests light on the shared CPU."""
