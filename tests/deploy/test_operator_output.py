"""What a ``deploy`` operator sees: the policy warmed up before the first step, and a status
line with the model's own inference time and the age of the chunk being played."""

import json
import re
import time

import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.deploy.session import DeployConfig, run_episodes
from embodied_mm.runtime.adapters.sim import SimRobot
from embodied_mm.runtime.inference import LocalPolicy, load_policy

ENV = "embodied_mm/PickLift-v0"


class ColdStart(LocalPolicy):
    """The real policy whose first call takes ``cold_s`` longer (a cold process's first
    inference: lazy kernels, thread pools, a server's own start)."""

    cold_s = 2.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def infer_batch(self, frames):
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.cold_s)
        return super().infer_batch(frames)


class SlowModel:
    """A policy whose forward pass takes ``delay_s`` longer (a bigger model), measured where
    :class:`LocalPolicy` measures it."""

    def __init__(self, policy, delay_s):
        self._policy = policy
        self.delay_s = delay_s

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def predict_chunk(self, batch):
        time.sleep(self.delay_s)
        return self._policy.predict_chunk(batch)


def _robot(policy: LocalPolicy) -> SimRobot:
    robot = SimRobot(ENV, seed=0, image_size=policy.image_size)
    robot.connect()
    return robot


@pytest.mark.slow
def test_a_cold_policy_is_warmed_up_before_the_first_step(tiny_checkpoint, tmp_path):
    source = ColdStart.from_checkpoint(tiny_checkpoint)
    robot = _robot(source)
    events: list[str] = []
    # stale after 1 s: the cold call (2 s) would hold step 0; one warm inference does not
    cfg = DeployConfig(mode="async", max_steps=4, out_dir=tmp_path,
                       safety_overrides={"max_obs_age_s": 1.0})  # fmt: skip
    try:
        (result,) = run_episodes(robot, source, source.metadata(), cfg, on_event=events.append)
    finally:
        robot.disconnect()
    assert events[0] == "warming up the policy…" and events[1].startswith("policy ready")
    assert source.calls > 1  # the cold call was the warm-up's, before the loop
    step0 = json.loads((tmp_path / "episode_000" / "run.jsonl").read_text().splitlines()[0])
    assert step0["step"] == 0 and step0["interventions"] == []
    assert "stale_observation" not in result.interventions
    timing = result.timing
    assert timing["policy_warmup_ms"] >= ColdStart.cold_s * 1e3
    # the deadline statistics are the loop's steps only: none of them holds the warm-up
    assert timing["steps"] == result.steps == 4
    assert timing["step_p99_ms"] < ColdStart.cold_s * 1e3


@pytest.mark.slow
def test_status_line_shows_the_models_time_not_the_loops_wait(tiny_checkpoint):
    delay_s = 0.15  # three control periods at 20 Hz
    source = LocalPolicy(SlowModel(load_policy(tiny_checkpoint, device="cpu"), delay_s))
    robot = _robot(source)
    lines: list[str] = []
    cfg = DeployConfig(mode="async", max_steps=16, out_dir=None,
                       safety_overrides={"max_obs_age_s": 5.0, "watchdog_stop_s": 10.0})  # fmt: skip
    try:
        (result,) = run_episodes(robot, source, source.metadata(), cfg,
                                 on_step=lambda step, loop: lines.append(loop.status_line()))  # fmt: skip
    finally:
        robot.disconnect()
    timing = result.timing
    assert timing["chunks"] >= 2
    assert timing["model_infer_p50_ms"] >= delay_s * 1e3
    # async: the loop waits for the first chunk only, not for the model at every step
    assert timing["infer_p50_ms"] < timing["model_infer_p50_ms"] / 2
    shown = re.search(r"model p50 +([\d.]+) ms \| chunk age (\d+) steps?", lines[-1])
    assert shown is not None, lines[-1]
    assert float(shown.group(1)) >= delay_s * 1e3
    # a chunk is played from steps after its observation: at least one step old once the
    # first chunk (waited for at step 0) has been replaced
    assert timing["chunk_age_max_steps"] >= 1
    assert int(shown.group(2)) <= timing["chunk_age_max_steps"]


@pytest.mark.slow
def test_deploy_cli_says_it_warms_up_and_the_summary_keeps_it_apart(tiny_checkpoint, tmp_path):
    args = ["deploy", "--robot", f"sim:{ENV}", "--checkpoint", str(tiny_checkpoint),
            "--steps", "5", "--out", str(tmp_path), "--max-obs-age-s", "1.0"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "warming up the policy…" in result.stderr and "policy ready" in result.stderr
    assert "model p50" in result.stderr and "chunk age" in result.stderr
    (summary,) = json.loads((tmp_path / "summary.json").read_text())
    assert summary["timing"]["policy_warmup_ms"] > 0
    assert summary["timing"]["steps"] == summary["steps"] == 5
    step0 = json.loads((tmp_path / "episode_000" / "run.jsonl").read_text().splitlines()[0])
    assert step0["step"] == 0 and step0["interventions"] == []
