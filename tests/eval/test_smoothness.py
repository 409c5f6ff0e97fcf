"""Smoothness figures on synthetic trajectories whose answers are worked out by hand."""

import numpy as np
import pytest

from embodied_mm.eval.smoothness import boundary_ratio, chunk_boundaries, rms_jerk, smoothness


def test_boundaries_are_where_the_played_chunk_changes():
    assert chunk_boundaries([0, 0, 0, 3, 3, 3, 6, 6]) == [3, 6]
    # the episode's first chunk is no boundary, a hold (None) in between none either
    assert chunk_boundaries([None, 0, 0, 2, None, 5]) == [3, 5]
    assert chunk_boundaries([0, None, 0]) == []


def test_an_invisible_boundary_has_ratio_one():
    ramp = np.arange(10, dtype=float)[:, None] * [1.0, 0.0]  # steps of 1 everywhere
    assert boundary_ratio(ramp, [4, 8]) == pytest.approx(1.0)


def test_a_jump_at_boundaries_shows_as_its_size_over_the_step():
    # within chunks steps of 0.1, jumps of 0.5 into steps 4 and 8: mean 0.5 / median 0.1 = 5
    a = np.cumsum([0.0, 0.1, 0.1, 0.1, 0.5, 0.1, 0.1, 0.1, 0.5, 0.1])[:, None]
    assert boundary_ratio(a, [4, 8]) == pytest.approx(5.0)
    # 2-D: a (0.3, 0.4) jump has norm 0.5
    b = np.zeros((5, 2))
    b[:, 0] = [0.0, 0.1, 0.2, 0.5, 0.6]
    b[3:, 1] = 0.4
    assert boundary_ratio(b, [3]) == pytest.approx(0.5 / 0.1)


def test_no_boundary_or_no_motion_gives_none():
    a = np.arange(6, dtype=float)[:, None]
    assert boundary_ratio(a, []) is None
    assert boundary_ratio(a, [1, 2, 3, 4, 5]) is None  # every step is a boundary
    assert boundary_ratio(np.zeros((6, 2)), [3]) is None


def test_rms_jerk_of_a_cubic_is_its_constant_third_derivative():
    dt = 0.05
    t = np.arange(20) * dt
    q = np.stack([t**3, 2 * t**3], axis=1)  # jerk 6 and 12 exactly (cubic: exact 3rd diff)
    assert rms_jerk(q, dt) == pytest.approx(np.sqrt(6.0**2 + 12.0**2))
    line = np.stack([t, t], axis=1)
    assert rms_jerk(line, dt) == pytest.approx(0.0, abs=1e-6)
    assert rms_jerk(q[:3], dt) is None


def test_a_step_gives_the_jerk_worked_out_by_hand():
    # a unit step at sample 3: first differences an impulse, second (1, -1), third
    # (1, -2, 1), /dt³; T - 3 = 5 terms
    q = np.array([0, 0, 0, 1, 1, 1, 1, 1], dtype=float)[:, None]
    dt = 0.1
    expected = np.sqrt((1 + 4 + 1) / 5) / dt**3
    assert rms_jerk(q, dt) == pytest.approx(expected)


def test_episode_summary():
    a = np.cumsum([0.0, 0.1, 0.1, 0.1, 0.5, 0.1, 0.1, 0.1])[:, None]
    out = smoothness(a, [0, 0, 0, 0, 4, 4, 4, 4], dt=0.05)
    assert out["boundaries"] == 1 and out["boundary_ratio"] == pytest.approx(5.0)
    assert out["rms_jerk"] > 0


def test_episode_motion_records_what_was_sent_and_reached():
    from embodied_mm.eval.smoothness import EpisodeMotion

    state = np.zeros(15)  # the Panda layout: joints are dims 0..6
    motion = EpisodeMotion(state)
    for t in range(8):
        motion.sent(np.array([0.1 * t + (0.4 if t >= 4 else 0.0)]), 0 if t < 4 else 4)
        reached = np.zeros(15)
        reached[0] = (0.05 * (t + 1)) ** 3 / 0.05**3 * 1e-3  # a cubic in time: constant jerk
        motion.reached(reached)
    out = motion.figures(dt=0.05)
    assert out["boundaries"] == 1
    assert out["boundary_ratio"] == pytest.approx(0.5 / 0.1)  # the jump into step 4
    # joints q(k) = 1e-3 k³ per sample: third difference 6e-3, / dt³
    assert out["joint_rms_jerk"] == pytest.approx(6e-3 / 0.05**3)


def test_task_summary_of_episode_figures():
    from embodied_mm.eval.smoothness import task_smoothness

    records = [
        {"smoothness": {"boundary_ratio": 2.0, "arm_boundary_ratio": 1.0, "joint_rms_jerk": 10.0}},
        {"smoothness": {"boundary_ratio": None, "joint_rms_jerk": 20.0}},  # no boundary
        {"smoothness": {"boundary_ratio": 5.0, "arm_boundary_ratio": 2.0, "joint_rms_jerk": 30.0}},
    ]
    assert task_smoothness(records) == {
        "boundary_ratio_mean": 3.5,
        "boundary_ratio_median": 3.5,
        "boundary_ratio_n": 2,
        "arm_boundary_ratio_mean": 1.5,
        "arm_boundary_ratio_median": 1.5,
        "arm_median_boundary_ratio_mean": None,  # no record has it
        "joint_rms_jerk_mean": 20.0,
    }
    assert task_smoothness([{"seed": 1}]) == {}


def test_holds_are_in_no_chunk_so_a_stop_and_start_shows_at_the_boundary():
    """A blocked loop: chunk 0 plays steps 0..3 at a steady 0.1 per step, the arm holds (zero
    command) for steps 4..11 while the next chunk is computed, chunk 4 plays from step 12."""
    from embodied_mm.eval.smoothness import within_chunk_steps

    a = np.array([0.1, 0.2, 0.3, 0.4] + [0.0] * 8 + [0.5, 0.6, 0.7, 0.8])[:, None]
    steps = [0] * 4 + [None] * 8 + [4] * 4
    within = within_chunk_steps(steps)
    assert within == [1, 2, 3, 13, 14, 15]
    assert chunk_boundaries(steps) == [12]
    # into step 12 the change is 0.5 (from the hold), between a chunk's actions 0.1
    assert boundary_ratio(a, [12], within) == pytest.approx(5.0)
    # counting the held steps as inside a chunk would halve the reference (median 0.05)
    assert boundary_ratio(a, [12]) == pytest.approx(10.0)
    assert boundary_ratio(a[:12], [], within) is None


def test_the_arm_ratio_leaves_out_a_gripper_that_closes_where_a_chunk_starts():
    from embodied_mm.eval.smoothness import EpisodeMotion, arm_action_dims

    arm = arm_action_dims("ee_delta")
    assert arm == [0, 1, 2, 3, 4, 5]  # dx .. dyaw; the 7th dim is the gripper
    assert arm_action_dims("joint_pos") == list(range(7))
    assert arm_action_dims("torque") is None
    state = np.zeros(15)
    motion = EpisodeMotion(state, arm)
    for t in range(12):  # the arm moves evenly; the gripper closes at step 6, a new chunk
        a = np.zeros(7)
        a[0] = 0.1 * t
        a[6] = 1.0 if t >= 6 else -1.0
        motion.sent(a, 0 if t < 6 else 6)
        motion.reached(state)
    figures = motion.figures(0.05)
    assert figures["arm_boundary_ratio"] == pytest.approx(1.0)
    assert figures["boundary_ratio"] == pytest.approx(np.hypot(0.1, 2.0) / 0.1)


def test_the_median_at_boundaries_gives_one_when_they_are_like_any_other_step():
    """Changes mostly 0.01 with a jump of 0.5 every fifth step (a phase ends), boundaries
    every third step: the same heavy-tailed distribution at and between boundaries."""
    changes = np.array([0.5 if t % 5 == 0 else 0.01 for t in range(1, 61)])
    a = np.concatenate([[0.0], np.cumsum(changes)])[:, None]  # (61, 1)
    boundaries = list(range(3, 61, 3))
    assert boundary_ratio(a, boundaries, at_boundaries="median") == pytest.approx(1.0)
    assert boundary_ratio(a, boundaries) > 5  # the mean counts the jumps that fall there
    with pytest.raises(ValueError, match="at_boundaries must be mean or median"):
        boundary_ratio(a, boundaries, at_boundaries="max")
