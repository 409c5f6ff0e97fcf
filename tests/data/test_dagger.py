"""DAgger recording: a real (random-init) policy drives a real env, the scripted expert labels."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.data.dagger import DaggerSource, dagger_source
from embodied_mm.data.reader import DatasetMeta, load_frames
from embodied_mm.data.recorder import GymExpertSource, record
from embodied_mm.features import ACTION, INTERVENTION

ENV_ID = "embodied_mm/ReachObject-v0"
SEED = 7


@pytest.fixture(scope="module")
def expert_episode():
    source = GymExpertSource(ENV_ID, "mujoco")
    try:
        return source.episode(SEED)
    finally:
        source.close()


def _episode(checkpoint, share: float):
    source = DaggerSource(ENV_ID, checkpoint, expert_share=share)
    try:
        return source.episode(SEED)
    finally:
        source.close()


def test_with_the_expert_sending_every_step_the_episode_is_the_expert_demo(
    tiny_checkpoint, expert_episode
):
    ep = _episode(tiny_checkpoint, share=1.0)
    assert len(ep.state) == len(expert_episode.state)
    np.testing.assert_allclose(ep.state, expert_episode.state, atol=1e-6)
    np.testing.assert_allclose(ep.action, expert_episode.action, atol=1e-6)
    assert ep.plan == expert_episode.plan
    assert ep.extras[INTERVENTION].tolist() == [1] * len(ep.state)


def test_the_policy_drives_but_every_label_is_the_experts(tiny_checkpoint, expert_episode):
    ep = _episode(tiny_checkpoint, share=0.0)
    # the first state is the reset, so the first label is the expert demo's first action
    np.testing.assert_allclose(ep.state[0], expert_episode.state[0], atol=1e-6)
    np.testing.assert_allclose(ep.action[0], expert_episode.action[0], atol=1e-6)
    # then the random policy takes the arm elsewhere: states leave the demo's path
    n = min(len(ep.state), len(expert_episode.state), 10)
    assert np.abs(ep.state[1:n] - expert_episode.state[1:n]).max() > 1e-3
    # labels are the expert's: an ee_delta in [-1, 1] with the gripper command +-1
    assert np.all(np.abs(ep.action) <= 1.0 + 1e-6)
    assert set(np.unique(ep.action[:, -1])) <= {-1.0, 1.0}


def test_record_keeps_the_policys_episodes_with_their_intervention_column(
    tiny_checkpoint, tmp_path
):
    out = tmp_path / "dagger"
    summary = record(
        dagger_source(ENV_ID, tiny_checkpoint),
        out,
        2,
        seed=SEED,
        keep_failures=True,
        progress=False,
    )
    assert summary.episodes == 2
    meta = DatasetMeta(out)
    table = load_frames(meta)
    assert len(table) == meta.total_frames > 2
    assert np.all(np.asarray(table.columns[INTERVENTION]) == 1)
    assert table.columns[ACTION].shape == (len(table), 7)


def test_record_policy_refuses_a_directory_without_a_policy(tmp_path):
    result = CliRunner().invoke(
        app,
        ["record", "--env", ENV_ID, "--policy", str(tmp_path), "--episodes", "1",
         "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "no saved policy there" in result.output
