"""The shipped default policy still does what its published evaluation says, roughly: a few
held-out seeds per task it was evaluated on, through the same ``run_eval`` as ``eval``, must
reach half its published success rate. A regression in the model, env or runtime code that
breaks the policy fails here; ordinary seed-to-seed variation does not."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "sim_assets" / "checkpoints" / "default"
PUBLISHED = ROOT / "docs" / "results" / "default-policy" / "mujoco-train" / "eval_info.json"
SEEDS_PER_TASK = 4


def published_tasks() -> list[tuple[str, float]]:
    info = json.loads(PUBLISHED.read_text())
    assert Path(info["checkpoint"]) == Path("sim_assets/checkpoints/default")
    return [(t["env_id"], t["success_rate"]) for t in info["tasks"]]


@pytest.mark.slow
@pytest.mark.parametrize(("env_id", "published"), published_tasks())
def test_the_shipped_policy_keeps_half_its_published_success(env_id, published, tmp_path):
    from embodied_mm.eval.evaluate import run_eval

    info = run_eval(CHECKPOINT, [env_id], "mujoco", SEEDS_PER_TASK, tmp_path, num_envs=2,
                    videos=False)  # fmt: skip
    (task,) = info["tasks"]
    floor = math.ceil(0.5 * published * SEEDS_PER_TASK)
    assert task["successes"] >= floor, (
        f"{env_id}: {task['successes']}/{SEEDS_PER_TASK} held-out episodes succeeded; the "
        f"published rate is {published:.0%} ({PUBLISHED.relative_to(ROOT)})"
    )
