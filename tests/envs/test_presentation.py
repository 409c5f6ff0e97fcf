"""The presentation camera: rendered on request at 480x360 on both engines, never observed,
and the instruction/plan banner drawn on its frames."""

from __future__ import annotations

import av
import numpy as np
import pytest

from embodied_mm.data.video import count_frames
from embodied_mm.envs.presentation import banner_height, draw_banner
from embodied_mm.envs.rollout import rollout
from embodied_mm.envs.tabletop_env import TabletopEnv

ENGINES = ["mujoco", "pybullet"]


@pytest.mark.parametrize("engine", ENGINES)
def test_presentation_view_is_480x360_and_never_observed(engine: str) -> None:
    env = TabletopEnv("reach", engine=engine)
    twin = TabletopEnv("reach", engine=engine)
    try:
        obs, _ = env.reset(seed=7)
        assert sorted(obs["pixels"]) == ["front", "wrist"]
        assert sorted(env.observation_space["pixels"].spaces) == ["front", "wrist"]
        assert all(img.shape == (128, 128, 3) for img in obs["pixels"].values())
        view = env.render_presentation()
        assert view.shape == (360, 480, 3) and view.dtype == np.uint8
        assert view.std() > 10  # a scene, not a blank buffer
        # rendering it leaves the observations alone: a twin that never renders it agrees
        twin_obs, _ = twin.reset(seed=7)
        action = np.zeros(7, dtype=np.float32)
        action[0] = 0.5
        for _ in range(3):
            env.render_presentation()
            obs, *_ = env.step(action)
            twin_obs, *_ = twin.step(action)
        for cam in ("front", "wrist"):
            np.testing.assert_array_equal(obs["pixels"][cam], twin_obs["pixels"][cam])
        np.testing.assert_array_equal(obs["agent_pos"], twin_obs["agent_pos"])
        # the arm moved: the view changes with the state
        assert np.abs(env.render_presentation().astype(int) - view).max() > 0
    finally:
        env.close()
        twin.close()


def test_banner_writes_instruction_and_plan_in_the_top_strip() -> None:
    frame = np.full((360, 480, 3), 128, dtype=np.uint8)
    one = draw_banner(frame, "pick up the red block")
    two = draw_banner(frame, "pick up the red block", "move above the red block")
    h1, h2 = banner_height(1), banner_height(2)
    assert one.shape == frame.shape and (frame == 128).all()  # the input is untouched
    assert (one[:h1] != frame[:h1]).any() and (one[h2 + 1 :] == frame[h2 + 1 :]).all()
    assert (one[h1 + 1 : h2] == frame[h1 + 1 : h2]).all()  # no plan line without a plan
    assert (two[h1:h2] != one[h1:h2]).any()  # the plan line
    other = draw_banner(frame, "push the blue block")
    assert (other[:h1] != one[:h1]).any()  # the text itself, not only the strip
    long = draw_banner(frame, "word " * 200)  # cut with an ellipsis, still one line
    assert (long[h1 + 1 :] == frame[h1 + 1 :]).all()


@pytest.mark.parametrize("camera, size", [("presentation", (480, 360)), ("policy", (128, 128))])
def test_rollout_videos_come_from_the_chosen_camera(tmp_path, camera: str, size) -> None:
    summary = rollout("embodied_mm/ReachObject-v0", "mujoco", "scripted", 1, tmp_path, seed=3,
                      video_camera=camera)  # fmt: skip
    (record,) = summary.per_episode
    with av.open(record["video"]) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == size
    assert count_frames(record["video"]) == record["steps"] + 1


def test_an_unknown_video_camera_is_a_usage_error(tmp_path) -> None:
    from embodied_mm.errors import UsageError

    with pytest.raises(UsageError, match="--video-camera 'side': use one of presentation, policy"):
        rollout("embodied_mm/ReachObject-v0", "mujoco", "scripted", 1, tmp_path,
                video_camera="side")  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
def test_policy_cameras_are_pixel_identical_to_a_scene_without_it(engine: str) -> None:
    """The presentation camera (and MuJoCo's larger offscreen buffer it needs) leaves the
    observed images bit for bit as before: the shipped policy sees the same frames."""
    import dataclasses

    env, bare = TabletopEnv("pick_lift", engine=engine), TabletopEnv("pick_lift", engine=engine)
    bare.scene = dataclasses.replace(bare.scene, presentation=None)  # before the engine exists
    try:
        obs, _ = env.reset(seed=11)
        env.render_presentation()
        bare_obs, _ = bare.reset(seed=11)
        with pytest.raises(KeyError, match="unknown camera 'presentation'"):
            bare.render_presentation()
        for cam in ("front", "wrist"):
            np.testing.assert_array_equal(obs["pixels"][cam], bare_obs["pixels"][cam])
    finally:
        env.close()
        bare.close()
