"""One controller stack: the same seed gives the same episode (actions, success, steps) and the
same safety interventions through ``rollout``, ``eval`` and ``deploy --robot sim:...``, and
eval's summaries count the interventions.

The policy is the tiny recipe (random init) saved with action stats ten times wider than the
env's [-1, 1] commands, so its actions often exceed the limits and the filter clips them (an
untrained policy never succeeds: every episode runs to ReachObject's 60-step limit)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.envs.rollout import rollout
from embodied_mm.eval.evaluate import evaluate_policy, run_eval
from embodied_mm.features import ACTION, OBS_STATE
from embodied_mm.model.normalize import unit_stats
from embodied_mm.policies.recipes import make_policy
from embodied_mm.runtime.controller import ControlSpec
from embodied_mm.runtime.inference import LocalPolicy

ENV = "embodied_mm/ReachObject-v0"
SEED = 100_000


@pytest.fixture(scope="module")
def wild_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("wild") / "policy"
    wide = {k: [10.0 * v for v in vals] for k, vals in unit_stats(7).items()}
    make_policy("vla-chunk", stats={OBS_STATE: unit_stats(15), ACTION: wide}).save_pretrained(path)
    return path


def via_rollout(ckpt, control, episodes=1):
    summary = rollout(ENV, "mujoco", str(ckpt), episodes, None, seed=SEED, control=control,
                      keep_actions=True)  # fmt: skip
    return summary.per_episode


def via_eval(ckpt, control, episodes=1, num_envs=1):
    policy = LocalPolicy.from_checkpoint(ckpt)
    out = evaluate_policy(policy, [ENV], "mujoco", episodes, seed=SEED, num_envs=num_envs,
                          control=control, keep_actions=True)  # fmt: skip
    return out[ENV]


def via_deploy(ckpt, mode, out):
    """The deploy command, paced at 20 Hz in wall time (staleness and watchdog limits wide, so
    a loaded machine cannot make them fire)."""
    args = ["deploy", "--robot", f"sim:{ENV}", "--checkpoint", str(ckpt), "--mode", mode,
            "--seed", str(SEED), "--out", str(out), "--max-obs-age-s", "30",
            "--watchdog-stop-s", "30"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (summary,) = json.loads((out / "summary.json").read_text())
    lines = [json.loads(x) for x in (out / "episode_000" / "run.jsonl").read_text().splitlines()]
    actions = [x["action"] for x in lines if "action" in x]
    return summary, actions


def same(a, b):
    for key in ("seed", "success", "steps", "task", "interventions", "stop_reason"):
        assert a[key] == b[key], key
    np.testing.assert_array_equal(a["actions"], b["actions"])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["open_loop", "ensemble"])
def test_rollout_eval_and_deploy_run_the_same_episode(wild_checkpoint, mode, tmp_path):
    (r,) = via_rollout(wild_checkpoint, ControlSpec(mode))
    (e,) = via_eval(wild_checkpoint, ControlSpec(mode))
    same(r, e)
    assert r["steps"] == 60 and not r["success"]
    assert r["interventions"]["joint_limit"] > 0  # the counts compared are not all zero
    d, actions = via_deploy(wild_checkpoint, mode, tmp_path / "deploy")
    assert (d["steps"], d["success"], d["interventions"]) == (60, False, r["interventions"])
    assert d["stop_reason"] == "episode_done"
    np.testing.assert_allclose(actions, r["actions"], rtol=0, atol=1e-5)  # run.jsonl: 5 decimals


@pytest.mark.slow
def test_async_in_simulated_time_is_the_same_through_rollout_and_eval(wild_checkpoint):
    control = ControlSpec("async", latency_steps=3, refill_at=1)
    (r,) = via_rollout(wild_checkpoint, control)
    (e,) = via_eval(wild_checkpoint, control)
    same(r, e)
    # a chunk asked for with 1 action left arrives 3 steps later: the queue runs dry and the
    # filter holds while the next chunk is on its way, as on a robot with a slow policy
    assert r["interventions"]["watchdog_hold"] > 0


@pytest.mark.slow
def test_batched_eval_starts_as_one_env_at_a_time(wild_checkpoint):
    """Two envs answered by one batched call per step play what two single rollouts play, up
    to float rounding between batch sizes (~1e-7, which the closed loop then amplifies: only
    the first chunk is compared)."""
    singles = via_rollout(wild_checkpoint, ControlSpec(), episodes=2)
    batched = via_eval(wild_checkpoint, ControlSpec(), episodes=2, num_envs=2)
    for a, b in zip(singles, batched, strict=True):
        assert (a["seed"], a["task"], a["steps"]) == (b["seed"], b["task"], b["steps"])
        np.testing.assert_allclose(a["actions"][:8], b["actions"][:8], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_eval_info_counts_interventions_per_episode_task_and_overall(wild_checkpoint, tmp_path):
    info = run_eval(wild_checkpoint, [ENV], "mujoco", episodes=2, out_dir=tmp_path)
    on_disk = json.loads((tmp_path / "eval_info.json").read_text())
    assert on_disk["control"] == {"mode": "open_loop", "hz": 20.0, "n_action_steps": None}
    (task,) = on_disk["tasks"]
    per_episode = [r["interventions"] for r in task["per_episode"]]
    assert all(c["joint_limit"] > 0 for c in per_episode)
    kinds = {k for c in per_episode for k in c}
    assert task["interventions"] == {k: sum(c.get(k, 0) for c in per_episode) for k in kinds}
    assert on_disk["overall"]["interventions"] == task["interventions"]
    assert info["overall"]["interventions"] == task["interventions"]


@pytest.mark.slow
def test_sent_actions_stay_inside_the_limits(wild_checkpoint):
    """The wild policy commands up to 10; what reaches the env never leaves [-1, 1]."""
    (e,) = via_eval(wild_checkpoint, ControlSpec())
    sent = np.asarray(e["actions"])  # (60, 7)
    assert sent.shape == (60, 7)
    assert np.abs(sent).max() <= 1.0
    assert (np.abs(sent[:, :6]) == 1.0).any()  # clipped to the limit, not merely small
