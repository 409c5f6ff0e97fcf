import pytest


@pytest.fixture(scope="session")
def stats_checkpoint(tmp_path_factory):
    """The tiny recipe saved with the stats of states spread over [-1, 1] (as a dataset's
    would be): its server enforces the state range [-3, 3]."""
    from embodied_mm.deploy.benchmark import uniform_stats
    from embodied_mm.policies import make_policy

    path = tmp_path_factory.mktemp("stats-ckpt")
    make_policy("vla-chunk", size="tiny", stats=uniform_stats()).save_pretrained(path)
    return path
