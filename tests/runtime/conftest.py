import pytest


@pytest.fixture(scope="session")
def tiny_policy():
    """The real tiny ``vla-chunk`` recipe (random init), for the sim's 2 cameras, 15-D state
    and 7-D ee_delta actions."""
    from embodied_mm.policies import make_policy

    policy = make_policy("vla-chunk", size="tiny")
    policy.eval()
    return policy


@pytest.fixture(autouse=True)
def patient_dynamixel_bus(monkeypatch):
    """The motor emulator answers from a thread of this process; on a loaded CI machine it can
    be starved past the SDK's ~34 ms status timeout, so emulator tests allow 200 ms more."""
    from embodied_mm.runtime.dynamixel.bus import DynamixelBus

    monkeypatch.setattr(DynamixelBus, "timeout_margin_ms", 200.0)
