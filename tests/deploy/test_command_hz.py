"""``deploy --command-hz``: checked up front; built for real position arms, refused for the
simulator and for delta actions."""

import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.deploy.session import DeployConfig, command_stream
from embodied_mm.errors import UsageError
from embodied_mm.runtime.adapters.feetech import FeetechRobot
from embodied_mm.runtime.adapters.sim import SimRobot
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator
from embodied_mm.runtime.safety import EStop
from tests.runtime.adapters.test_feetech_robot import IDS, so101_calibration


def test_the_rate_must_be_a_multiple_and_the_limits_positive():
    with pytest.raises(UsageError, match="whole multiple of the action rate 20 Hz, got 50"):
        DeployConfig(hz=20.0, command_hz=50.0)
    with pytest.raises(UsageError, match="--command-max-jerk"):
        DeployConfig(hz=20.0, command_hz=100.0, command_max_jerk=0.0)
    assert DeployConfig(hz=20.0).command_hz is None


def test_a_stream_for_a_position_arm_and_none_for_delta_actions():
    cfg = DeployConfig(hz=20.0, command_hz=100.0)
    with FeetechBusEmulator(IDS) as emu:
        arm = FeetechRobot(emu.port, so101_calibration())
        stream = command_stream(arm, arm.default_safety(), cfg, EStop())
        assert stream is not None and stream.n == 5
        assert command_stream(arm, arm.default_safety(), DeployConfig(), EStop()) is None
    sim = SimRobot("reach", engine="mujoco", seed=0)  # ee_delta: no velocity limit
    sim.connect()
    try:
        with pytest.raises(UsageError, match="absolute position actions"):
            command_stream(sim, sim.default_safety(), cfg, EStop())
    finally:
        sim.disconnect()


def test_deploy_refuses_it_in_simulation():
    out = CliRunner().invoke(
        app, ["deploy", "--robot", "sim:reach", "--checkpoint", "x", "--command-hz", "100"]
    )
    assert out.exit_code == 2 and "the simulator steps once per action" in out.output
