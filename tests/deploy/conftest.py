import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The real tiny ``vla-chunk`` recipe saved with save_pretrained (random init)."""
    from embodied_mm.policies import make_policy

    path = tmp_path_factory.mktemp("ckpt")
    make_policy("vla-chunk", size="tiny").save_pretrained(path)
    return path
