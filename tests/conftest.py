import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    # tiny models are fastest single-threaded, and tests may run beside other work
    torch.set_num_threads(1)
    yield
