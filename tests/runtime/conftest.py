import pytest


@pytest.fixture(scope="session")
def tiny_policy():
    """The real tiny ``vla-chunk`` recipe (random init), for the sim's 2 cameras, 15-D state
    and 7-D ee_delta actions."""
    from embodied_mm.policies import make_policy

    policy = make_policy("vla-chunk", size="tiny")
    policy.eval()
    return policy
