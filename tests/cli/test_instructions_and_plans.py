"""``--instruction`` replaces the env's sampled instruction and reaches the policy; plans are
asked for by default from a checkpoint trained with plan labels, shown and logged by demo,
rollout, eval and deploy with the step each began; ``eval --env all`` and its task table."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from embodied_mm.cli.demo import shipped_checkpoint
from embodied_mm.cli.main import app
from embodied_mm.cli.plan_options import live_status
from embodied_mm.envs.registration import expand_env_ids, task_ids
from embodied_mm.envs.rollout import rollout
from embodied_mm.errors import UsageError

ENV = "embodied_mm/ReachObject-v0"
SEED = 100_000
RED, BLUE = "reach for the red ball", "reach for the blue cube"


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr is when a person runs demo."""

    def isatty(self) -> bool:
        return True


def _plan_log_is_well_formed(record: dict) -> None:
    log = record["plan_log"]
    assert log and log[0]["step"] == 0 and all(e["plan"].strip() for e in log)
    steps = [e["step"] for e in log]
    assert steps == sorted(set(steps)) and steps[-1] < record["steps"]
    assert [e["plan"] for e in log] == record["plans"]


@pytest.mark.slow
def test_the_instruction_reaches_the_shipped_policy_and_every_record(tmp_path):
    """Same seed, the shipped checkpoint (FiLM on the instruction), through the function demo
    and rollout call: the first action sent depends on the instruction given."""
    runs = {}
    terminal = _Terminal()
    for name, text in (("env", None), ("red", RED), ("blue", BLUE)):
        path = tmp_path / f"{name}.json"
        runs[name] = rollout(ENV, "mujoco", str(shipped_checkpoint()), 1, None, seed=SEED,
                             summary_path=path, keep_actions=True, instruction=text,
                             on_step=live_status(terminal))  # fmt: skip
        assert json.loads(path.read_text())["instruction"] == text
    assert "\r\x1b[Kstep    4 | plan: move above the " in terminal.getvalue()  # the live line
    env, red, blue = (runs[k].per_episode[0] for k in ("env", "red", "blue"))
    first = {k: np.asarray(r["actions"][0]) for k, r in (("red", red), ("blue", blue))}
    assert np.abs(first["red"] - first["blue"]).max() > 1e-3
    assert env["instruction_source"] == "env" and "env_task" not in env
    for record, text in ((red, RED), (blue, BLUE)):
        assert record["task"] == text and record["instruction_source"] == "user"
        assert record["env_task"] == env["task"]  # what the env sampled for this seed
    for summary in runs.values():  # trained with plan labels: plans on by default
        assert summary.with_plan
        _plan_log_is_well_formed(summary.per_episode[0])


def test_instructions_and_plans_are_for_checkpoints():
    with pytest.raises(UsageError, match="--instruction is for a checkpoint policy"):
        rollout(ENV, "mujoco", "scripted", 1, None, instruction=RED)
    with pytest.raises(UsageError, match="--instruction must be a non-empty text"):
        rollout(ENV, "mujoco", str(shipped_checkpoint()), 1, None, instruction="  ")


@pytest.mark.slow
def test_demo_logs_the_instruction_and_the_plans(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--env", ENV, "--out", str(tmp_path),
                                      "--instruction", RED])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "plans: on (the checkpoint was trained with plan labels" in result.stdout
    (line,) = [x for x in result.stdout.splitlines() if x.startswith(f"episode {SEED}:")]
    assert f'instruction: "{RED}" (--instruction; the env sampled "' in line
    assert "; plans: " in line and "(step 0)" in line
    (record,) = json.loads((tmp_path / "summary.json").read_text())["per_episode"]
    assert record["task"] == RED and record["video"]
    _plan_log_is_well_formed(record)


@pytest.mark.slow
def test_eval_keeps_the_instruction_and_plans_per_episode_and_prints_the_table(tmp_path):
    envs = f"{ENV},embodied_mm/PickLift-v0"
    args = ["eval", "--checkpoint", str(shipped_checkpoint()), "--env", envs, "--episodes", "1",
            "--num-envs", "1", "--out", str(tmp_path), "--instruction", BLUE]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "eval_info.json").read_text())
    assert info["instruction"] == BLUE and info["plans"] is True
    for task in info["tasks"]:
        (record,) = task["per_episode"]
        assert record["task"] == BLUE and record["instruction_source"] == "user"
        assert record["env_task"] and record["env_task"] != BLUE
        _plan_log_is_well_formed(record)
    out = result.stdout.splitlines()
    assert f'instruction: "{BLUE}" (--instruction, every episode)' in out
    header = next(i for i, x in enumerate(out) if x.startswith("task ") and "95% CI" in x)
    rows = out[header + 2 : header + 5]  # after the rule: one row per task, then overall
    assert [r.split()[0] for r in rows] == [ENV, "embodied_mm/PickLift-v0", "overall"]


def test_eval_env_all_means_every_registered_task():
    assert expand_env_ids("all") == sorted(task_ids()) and len(task_ids()) == 7
    assert expand_env_ids(f"{ENV},embodied_mm/PickLift-v0") == [ENV, "embodied_mm/PickLift-v0"]
    with pytest.raises(UsageError, match="give it alone"):
        expand_env_ids(f"all,{ENV}")
    with pytest.raises(UsageError, match=f"--env names {ENV} more than once"):
        expand_env_ids(f"{ENV},{ENV}")
    # through the command: `all` is every task (each one checked), not an unknown env id
    result = CliRunner().invoke(app, ["eval", "--checkpoint", "/nonexistent", "--env", "all"])
    assert result.exit_code == 2 and "policy directory /nonexistent does not exist" in result.stderr


@pytest.mark.slow
def test_deploy_sim_takes_the_instruction_and_logs_it_with_the_plans(tmp_path):
    """--task, the older name of --instruction, still works."""
    args = ["deploy", "--robot", f"sim:{ENV}", "--checkpoint", str(shipped_checkpoint()),
            "--task", RED, "--steps", "12", "--mode", "open_loop", "--out", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "MUJOCO_GL": "egl"}
    done = subprocess.run([sys.executable, "-m", "embodied_mm.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "plans: on (the checkpoint was trained with plan labels" in done.stdout
    assert f'episode 0: instruction: "{RED}" (--instruction; the env sampled "' in done.stderr
    (summary,) = json.loads((tmp_path / "summary.json").read_text())
    assert summary["task"] == RED and summary["instruction_source"] == "user"
    assert summary["plan_log"] and summary["plan_log"][0]["step"] == 0
    logged = [json.loads(x) for x in (tmp_path / "episode_000" / "run.jsonl").open()]
    assert logged[-1]["summary"]["task"] == RED
    assert logged[0]["plan"] == summary["plan_log"][0]["plan"]
