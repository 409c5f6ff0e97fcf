"""The perturbation factors of envs/perturbations: each changes what it claims, level 0 is no
change at all, a seed reproduces a perturbation (on both engines), bad names are one line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import embodied_mm.envs  # noqa: F401  (registers the ids)
from embodied_mm.envs.perturbations import FACTORS, parse_perturb_args
from embodied_mm.envs.robot import HOME_Q
from embodied_mm.envs.tabletop_env import TabletopEnv
from embodied_mm.envs.tasks import layout
from embodied_mm.errors import UsageError
from tests.envs.engines_available import ENGINES

SMALL = 64  # px
SEED = 11


def make(perturb=None, task="reach", engine="mujoco", **kw) -> TabletopEnv:
    return TabletopEnv(task, engine=engine, image_size=SMALL, perturb=perturb, **kw)


def first_obs(perturb=None, seed=SEED, **kw):
    env = make(perturb, **kw)
    try:
        obs, info = env.reset(seed=seed)
        return obs, info, env.episode
    finally:
        env.close()


def front_diff(a, b) -> float:
    return float(np.abs(a["pixels"]["front"].astype(int) - b["pixels"]["front"]).mean())


def test_level_zero_is_bit_identical_to_no_perturbation():
    zero = {name: 0 for name in FACTORS}
    a, b = make(), make(zero)
    try:
        assert not b.perturbation
        oa, ia = a.reset(seed=SEED)
        ob, ib = b.reset(seed=SEED)
        rng = np.random.default_rng(0)
        for _ in range(4):
            act = rng.uniform(-1, 1, size=7).astype(np.float32)
            oa, *_ = a.step(act)
            ob, *_ = b.step(act)
        assert ia["task"] == ib["task"]
        for cam in oa["pixels"]:
            np.testing.assert_array_equal(oa["pixels"][cam], ob["pixels"][cam])
        np.testing.assert_array_equal(oa["agent_pos"], ob["agent_pos"])
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_camera_shift_moves_the_view_more_at_higher_levels(engine):
    base, *_ = first_obs(engine=engine)
    d1 = front_diff(base, first_obs({"camera_shift": 1}, engine=engine)[0])
    d3 = front_diff(base, first_obs({"camera_shift": 3}, engine=engine)[0])
    assert 0 < d1 < d3
    # the wrist camera rides the hand: not moved
    wrist = first_obs({"camera_shift": 3}, engine=engine)[0]["pixels"]["wrist"]
    np.testing.assert_array_equal(wrist, base["pixels"]["wrist"])


def test_table_texture_and_lighting_change_the_image():
    base, *_ = first_obs()
    for perturb in ({"table_texture": 1}, {"table_texture": 2}, {"lighting": 1}):
        assert front_diff(base, first_obs(perturb)[0]) > 5, perturb


def test_distractors_add_bodies_on_the_table_and_leave_the_task_draw_alone():
    _, _, episode0 = first_obs()
    env = make({"distractors": 2})
    try:
        env.reset(seed=SEED)
        extras = [n for n in env.episode.poses if n.startswith("extra_distractor_")]
        assert len(extras) == FACTORS["distractors"].levels[2]
        assert len(env.scene.objects) == len(episode0.poses) + len(extras)
        for name in extras:
            pos, _ = env.engine.object_pose(name)
            assert layout.WORKSPACE_X[0] <= pos[0] <= layout.WORKSPACE_X[1]
            assert layout.WORKSPACE_Y[0] <= pos[1] <= layout.WORKSPACE_Y[1]
        for name, (pos, _) in episode0.poses.items():  # the episode's own draws are unchanged
            np.testing.assert_array_equal(env.episode.poses[name][0], pos)
        target_rgb = np.array(episode0.rgba["target"][:3])
        for name in extras:  # never the named colour
            assert np.abs(np.array(env.episode.rgba[name][:3]) - target_rgb).max() > 0.2
    finally:
        env.close()


def test_object_position_is_outside_the_training_region():
    env = make({"object_position": 2}, task="pick_lift")
    try:
        for seed in range(6):
            env.reset(seed=seed)
            x, y, _ = env.engine.object_pose("target")[0]
            inside = (layout.WORKSPACE_X[0] <= x <= layout.WORKSPACE_X[1]
                      and layout.WORKSPACE_Y[0] <= y <= layout.WORKSPACE_Y[1])  # fmt: skip
            assert not inside, (seed, x, y)
            margin = FACTORS["object_position"].levels[2]
            assert layout.WORKSPACE_X[0] - margin <= x <= layout.WORKSPACE_X[1] + margin
    finally:
        env.close()


def test_object_size_scales_the_bodies():
    env = make({"object_size": 2})
    try:
        env.reset(seed=SEED)
        target = next(o for o in env.scene.objects if o.name == "target")
        assert target.size[0] == pytest.approx(0.02 * FACTORS["object_size"].levels[2])
        for _ in range(5):
            env.step(np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float32))
        assert env.engine.object_pose("target")[0][2] == pytest.approx(target.size[2], abs=3e-3)
    finally:
        env.close()


def test_object_color_moves_shades_beyond_the_training_jitter():
    _, _, e0 = first_obs()
    _, _, e1 = first_obs({"object_color": 2})
    for name in e0.rgba:
        moved = np.abs(np.array(e1.rgba[name][:3]) - e0.rgba[name][:3])
        assert moved.max() > 0.07


@pytest.mark.parametrize("engine", ENGINES)
def test_joint_noise_changes_the_initial_joints_the_same_way_on_both_engines(engine):
    obs, *_ = first_obs({"joint_noise": 2}, engine=engine)
    q = obs["agent_pos"][:7]
    assert np.abs(q - HOME_Q).max() > 0.05
    again, *_ = first_obs({"joint_noise": 2}, engine=engine)
    np.testing.assert_array_equal(q, again["agent_pos"][:7])
    other, *_ = first_obs({"joint_noise": 2}, engine=engine, seed=SEED + 1)
    assert np.abs(other["agent_pos"][:7] - q).max() > 1e-3
    if engine != "mujoco":
        ref, *_ = first_obs({"joint_noise": 2}, engine="mujoco")
        np.testing.assert_allclose(q, ref["agent_pos"][:7], atol=1e-4)


def _high_frequency_energy(img: np.ndarray) -> float:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def test_blur_lowers_high_frequency_energy_and_noise_is_seeded():
    base, *_ = first_obs()
    e0 = _high_frequency_energy(base["pixels"]["front"])
    e1 = _high_frequency_energy(first_obs({"blur": 1})[0]["pixels"]["front"])
    e2 = _high_frequency_energy(first_obs({"blur": 2})[0]["pixels"]["front"])
    assert e2 < e1 < e0
    n1, *_ = first_obs({"image_noise": 1})
    assert front_diff(base, n1) > 2
    np.testing.assert_array_equal(
        n1["pixels"]["front"], first_obs({"image_noise": 1})[0]["pixels"]["front"]
    )


def test_frame_drop_repeats_the_previous_frame():
    plain, dropped = make(), make({"frame_drop": 2})
    try:
        prev_p, _ = plain.reset(seed=SEED)
        prev_d, _ = dropped.reset(seed=SEED)
        n_drops = 0
        act = np.array([0.5, 0.5, -0.3, 0, 0, 0, -1], dtype=np.float32)
        for _ in range(12):
            op, *_ = plain.step(act)
            od, *_ = dropped.step(act)
            np.testing.assert_array_equal(op["agent_pos"], od["agent_pos"])  # state is live
            if np.array_equal(od["pixels"]["front"], prev_d["pixels"]["front"]):
                assert not np.array_equal(op["pixels"]["front"], prev_p["pixels"]["front"])
                np.testing.assert_array_equal(od["pixels"]["wrist"], prev_d["pixels"]["wrist"])
                n_drops += 1
            else:
                np.testing.assert_array_equal(od["pixels"]["front"], op["pixels"]["front"])
            prev_p, prev_d = op, od
        assert 0 < n_drops < 12
    finally:
        plain.close()
        dropped.close()


@pytest.mark.parametrize("action_mode", ["ee_delta", "joint_pos"])
def test_action_latency_delays_the_actions_by_k_steps(action_mode):
    k = FACTORS["action_latency"].levels[2]
    late, plain = (
        make({"action_latency": 2}, action_mode=action_mode),
        make(action_mode=action_mode),
    )
    try:
        late.reset(seed=SEED)
        plain.reset(seed=SEED)
        rng = np.random.default_rng(1)
        actions = [late.action_space.sample() for _ in range(6)]
        if action_mode == "ee_delta":
            actions = [rng.uniform(-1, 1, size=7).astype(np.float32) for _ in range(6)]
        hold = late._hold_action(HOME_Q)  # (D,) float64, as the late env queues it
        for a in [hold] * k:
            plain.step(a)
        for i, a in enumerate(actions):
            ol, *_ = late.step(a)
            if i < len(actions) - k:
                op, *_ = plain.step(a)
        # the late env, after all the actions, is where the plain one is after all but k
        np.testing.assert_array_equal(ol["agent_pos"], op["agent_pos"])
    finally:
        late.close()
        plain.close()


def instructions(perturb=None, seeds=(SEED,)) -> list[tuple[str, object]]:
    """(instruction, episode) of each seed, from one env (16 px: the text is what counts)."""
    env = TabletopEnv("reach", image_size=16, perturb=perturb)
    try:
        return [(env.reset(seed=s)[1]["task"], env.episode) for s in seeds]
    finally:
        env.close()


@pytest.mark.parametrize("factor", ["typos", "word_order", "extra_words"])
def test_language_factors_change_the_text_deterministically(factor):
    seeds = range(6)
    base = instructions(seeds=seeds)
    for level in FACTORS[factor].levels:
        texts = instructions({factor: level}, seeds=[*seeds, 0])
        assert texts[-1][0] == texts[0][0]  # the same seed, the same text
        for (text, _), (plain, episode) in zip(texts, base, strict=False):
            assert text != plain
            assert episode.words["color"] in text.split(" ")  # the named word survives
        assert len({t for t, _ in texts}) > 1


def test_phrasing_and_absent_object():
    ((text, episode),) = instructions({"phrasing": 1})
    templates = [t.format(**episode.words) for t in TabletopEnv("reach").task.instructions.heldout]
    assert text in templates
    seeds = range(5)
    for (text, _), (_, episode) in zip(
        instructions({"absent_object": 1}, seeds), instructions(seeds=seeds), strict=True
    ):
        assert episode.words["color"] not in text.split(" ")
        absent = next(w for w in text.split(" ") if w in layout.PALETTE)
        for rgba in episode.rgba.values():  # no object in the scene has that colour
            assert np.abs(np.array(rgba[:3]) - layout.PALETTE[absent]).max() > 0.1


def test_perturbations_are_the_same_on_both_engines():
    pytest.importorskip("pybullet")
    perturb = {"distractors": 1, "typos": 2, "object_position": 1}
    _, im, em = first_obs(perturb, engine="mujoco")
    _, ib, eb = first_obs(perturb, engine="pybullet")
    assert im["task"] == ib["task"]
    for name, (pos, _) in em.poses.items():
        np.testing.assert_array_equal(pos, eb.poses[name][0])


def test_unknown_factor_or_level_is_a_one_line_error():
    with pytest.raises(UsageError, match=r"unknown perturbation 'fog'; known: camera_shift"):
        make({"fog": 1})
    with pytest.raises(UsageError, match=r"has no level '7'; levels: 0 \(none\), 1 \(0.05 m\)"):
        parse_perturb_args(["camera_shift=7"])
    with pytest.raises(UsageError, match="NAME=LEVEL"):
        parse_perturb_args(["camera_shift"])
    assert parse_perturb_args(["blur=2", "typos=1"]) == {"blur": 2, "typos": 1}


@pytest.mark.slow
def test_record_perturb_stores_the_perturbed_instruction(tmp_path):
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from embodied_mm.cli.main import app

    out = CliRunner().invoke(app, ["record", "--env", "embodied_mm/ReachObject-v0", "--episodes",
                                   "1", "--out", str(tmp_path / "ds"), "--perturb", "typos=2"])  # fmt: skip
    assert out.exit_code == 0, out.output
    (recorded,) = pq.read_table(tmp_path / "ds" / "meta" / "tasks.parquet").to_pandas().index
    _, plain, _ = first_obs(seed=0)
    _, typos, _ = first_obs({"typos": 2}, seed=0)
    assert recorded == typos["task"] != plain["task"]
    bad = CliRunner().invoke(app, ["record", "--env", "embodied_mm/ReachObject-v0", "--episodes",
                                   "1", "--out", str(tmp_path / "b"), "--perturb", "fog=1"])  # fmt: skip
    assert bad.exit_code == 2 and "unknown perturbation 'fog'" in bad.output


def test_rollout_perturb_runs_the_perturbed_env(tmp_path):
    from embodied_mm.envs.rollout import rollout

    summary = rollout("embodied_mm/ReachObject-v0", "mujoco", "scripted", 1, None, seed=3,
                      image_size=SMALL, perturb={"word_order": 2})  # fmt: skip
    _, shuffled, _ = first_obs({"word_order": 2}, seed=3)
    assert summary.per_episode[0]["task"] == shuffled["task"]
    assert summary.per_episode[0]["task"] != first_obs(seed=3)[1]["task"]
