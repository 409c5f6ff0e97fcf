"""One test per safety intervention, plus the pass-through case."""

import os
import signal

import numpy as np
import pytest

from embodied_mm.runtime.safety import (
    EStop,
    Intervention,
    NonFiniteHold,
    SafetyConfig,
    SafetyFilter,
)


class FakeClock:
    """A settable clock so watchdog and staleness tests do not sleep."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(config: SafetyConfig, **kw) -> tuple[SafetyFilter, FakeClock]:
    clock = FakeClock()
    return SafetyFilter(config, hz=10.0, clock=clock, **kw), clock


HOLD = np.array([0.1, -0.2, 0.3, 0.5])


def test_clean_action_passes_unchanged():
    f, _ = make(SafetyConfig(action_low=[-1] * 4, action_high=[1] * 4))
    out = f.filter(np.array([0.2, -0.1, 0.35, 0.5]), HOLD)
    assert out.interventions == [] and not out.stop
    np.testing.assert_allclose(out.action, [0.2, -0.1, 0.35, 0.5])
    assert sum(f.counts.values()) == 0


def test_joint_limits_clip_and_count():
    f, _ = make(SafetyConfig(action_low=[-1, -1, -1, 0], action_high=[1, 1, 1, 1], gripper_index=3))
    out = f.filter(np.array([2.0, -3.0, 0.0, 0.5]), HOLD)
    np.testing.assert_allclose(out.action, [1.0, -1.0, 0.0, 0.5])
    assert out.interventions == [Intervention.JOINT_LIMIT]
    assert f.counts["joint_limit"] == 1
    assert "[0, 1]" in f.events[-1]["detail"]


def test_gripper_limits_clip():
    f, _ = make(SafetyConfig(gripper_index=-1, gripper_low=0.0, gripper_high=0.8))
    out = f.filter(np.array([0.0, 0.0, 0.0, 1.5]), HOLD)
    assert out.action[-1] == pytest.approx(0.8)
    assert out.interventions == [Intervention.GRIPPER_LIMIT]


def test_nan_and_inf_hold_current_position():
    f, _ = make(SafetyConfig())
    for bad in (np.nan, np.inf, -np.inf):
        out = f.filter(np.array([0.0, bad, 0.0, 0.0]), HOLD)
        np.testing.assert_array_equal(out.action, HOLD)
        assert out.interventions == [Intervention.NONFINITE]
    assert f.counts["nonfinite_action"] == 3


@pytest.mark.parametrize("action", [None, np.zeros(4), np.array([0.0, np.nan, 0.0, 0.0])])
def test_a_nonfinite_hold_is_never_returned(action):
    """A hold is what every intervention sends; a broken state reading must not become one,
    whatever the policy sent (no action, a good one, a NaN one) and even under an e-stop."""
    f, _ = make(SafetyConfig(max_velocity=[1.0] * 4))
    f.estop.trigger("operator")
    bad_hold = np.array([0.1, np.inf, np.nan, 0.5])
    with pytest.raises(NonFiniteHold, match=r"hold command has NaN/inf in dims \[1, 2\]"):
        f.filter(action, bad_hold)
    assert f.counts["nonfinite_hold"] == 1 and f.events[-1]["kind"] == "nonfinite_hold"


def test_max_velocity_limits_step_from_last_command():
    # 1 unit/s at 10 Hz: at most 0.1 per step, starting from the hold position
    f, _ = make(SafetyConfig(max_velocity=[1.0] * 4))
    out = f.filter(HOLD + np.array([0.5, 0.0, -0.05, 0.0]), HOLD)
    np.testing.assert_allclose(out.action, HOLD + np.array([0.1, 0.0, -0.05, 0.0]))
    assert out.interventions == [Intervention.MAX_DELTA]
    out2 = f.filter(HOLD + np.array([0.5, 0.0, 0.0, 0.0]), HOLD)  # reference = last command
    np.testing.assert_allclose(out2.action[0], HOLD[0] + 0.2)


def test_workspace_box_holds_outside():
    # A toy forward model: the first three action dims are the TCP position.
    cfg = SafetyConfig(workspace_low=[0, -0.5, 0.0], workspace_high=[1, 0.5, 0.8])
    f, _ = make(cfg, ee_position_fn=lambda a: a[:3])
    inside = f.filter(np.array([0.5, 0.0, 0.2, 0.0]), HOLD)
    assert inside.interventions == []
    out = f.filter(np.array([0.5, 0.0, -0.1, 0.0]), HOLD)  # below the table
    np.testing.assert_array_equal(out.action, HOLD)
    assert out.interventions == [Intervention.WORKSPACE]


def test_workspace_without_forward_model_is_rejected():
    with pytest.raises(ValueError, match="ee_position_fn"):
        SafetyFilter(SafetyConfig(workspace_low=[0] * 3, workspace_high=[1] * 3), hz=10)


def test_watchdog_holds_then_stops():
    f, clock = make(SafetyConfig(watchdog_stop_s=0.5))
    assert f.filter(np.zeros(4), HOLD).interventions == []
    clock.t += 0.2
    out = f.filter(None, HOLD)
    assert out.interventions == [Intervention.WATCHDOG_HOLD] and not out.stop
    np.testing.assert_array_equal(out.action, HOLD)
    clock.t += 0.4  # 0.6 s since the last fresh action
    out = f.filter(None, HOLD)
    assert out.interventions == [Intervention.WATCHDOG_STOP] and out.stop
    assert f.counts["watchdog_hold"] == 1 and f.counts["watchdog_stop"] == 1


def test_stale_camera_frame_holds():
    f, clock = make(SafetyConfig(max_obs_age_s=0.1))
    fresh = f.filter(np.zeros(4), HOLD, {"front": clock.t - 0.05, "wrist": clock.t})
    assert fresh.interventions == []
    out = f.filter(np.ones(4), HOLD, {"front": clock.t - 0.3, "wrist": clock.t})
    np.testing.assert_array_equal(out.action, HOLD)
    assert out.interventions == [Intervention.STALE_OBS]
    assert "front" in f.events[-1]["detail"] and "wrist" not in f.events[-1]["detail"]


def test_estop_api_stops_and_latches():
    f, _ = make(SafetyConfig())
    f.estop.trigger("operator")
    for _ in range(2):
        out = f.filter(np.ones(4), HOLD)
        assert out.stop and out.interventions == [Intervention.ESTOP]
        np.testing.assert_array_equal(out.action, HOLD)
    assert f.events[-1]["detail"] == "operator"
    f.estop.reset()
    assert not f.filter(np.ones(4), HOLD).stop


def test_estop_on_sigint():
    estop = EStop()
    estop.install_sigint()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert estop.engaged and estop.reason == "SIGINT"
    finally:
        estop.uninstall_sigint()
    f, _ = make(SafetyConfig(), estop=estop)
    assert f.filter(np.zeros(4), HOLD).stop


def test_wrong_action_shape_is_an_error():
    f, _ = make(SafetyConfig())
    with pytest.raises(ValueError, match="shape"):
        f.filter(np.zeros(3), HOLD)
