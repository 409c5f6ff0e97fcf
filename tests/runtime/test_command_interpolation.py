"""``--command-hz``: jerk-limited commands between policy actions (ruckig)."""

import numpy as np
import pytest

from embodied_mm.runtime.command_interpolation import CommandInterpolator, commands_per_action

ACTION_HZ, COMMAND_HZ = 20.0, 100.0
V, A, J = 1.0, 10.0, 1000.0  # rad/s, rad/s², rad/s³


def actions(steps: int = 40) -> np.ndarray:
    """Smooth motions that start at rest, within the limits."""
    t = np.arange(steps) / ACTION_HZ
    return np.stack([0.2 * (1 - np.cos(np.pi * t)), 0.1 * (1 - np.cos(0.6 * np.pi * t))], 1)


def run(interp: CommandInterpolator, targets: np.ndarray) -> np.ndarray:
    return np.concatenate([interp.plan(a) for a in targets])  # (steps * n, J)


def jerk(commands: np.ndarray, dt: float) -> np.ndarray:
    return np.abs(np.diff(commands, n=3, axis=0)) / dt**3  # (T - 3, J)


def test_every_action_is_hit_at_its_time_and_the_jerk_limit_holds():
    interp = CommandInterpolator(2, ACTION_HZ, COMMAND_HZ, V, A, J)
    targets = actions()
    commands = run(interp, targets)
    n = interp.n
    assert n == 5 and commands.shape == (len(targets) * n, 2)
    # action k is the command at its scheduled time: the last of period k
    np.testing.assert_array_equal(commands[n - 1 :: n], targets)
    assert interp.late == 0
    assert jerk(commands, interp.dt).max() <= J * (1 + 1e-6)
    # the 20 Hz actions held for 5 commands each (no interpolation) break the limit
    held = np.repeat(targets, n, axis=0)
    assert jerk(held, interp.dt).max() > 10 * J


def test_a_jump_beyond_the_limits_is_late_but_keeps_them():
    interp = CommandInterpolator(1, ACTION_HZ, COMMAND_HZ, V, A, J)
    targets = np.array([[0.0]] * 2 + [[0.5]] * 20)  # 1 s at 0.5 rad: time enough
    commands = run(interp, targets)
    assert interp.late >= 1  # 0.5 rad in 50 ms is out of reach under these limits
    assert jerk(commands, interp.dt).max() <= J * (1 + 1e-6)
    vel = np.abs(np.diff(commands[:, 0])) / interp.dt
    assert vel.max() <= V * (1 + 1e-6)
    assert commands[-1, 0] == pytest.approx(0.5, abs=1e-6)  # it gets there in the end


def test_rates_must_be_a_whole_multiple():
    assert commands_per_action(100.0, 20.0) == 5
    with pytest.raises(ValueError, match="whole multiple"):
        commands_per_action(50.0, 20.0)
    with pytest.raises(ValueError, match="max_jerk must be positive"):
        CommandInterpolator(2, 20.0, 100.0, V, A, 0.0)
