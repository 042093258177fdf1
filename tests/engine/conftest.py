import _engine_tiny  # noqa: F401  (registers the tiny test models)
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Keep engine tests light on the shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
