import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Two cores are shared by the xdist workers (and other jobs): one intra-op thread per
    process avoids OpenMP oversubscription, which made tiny-model steps ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
