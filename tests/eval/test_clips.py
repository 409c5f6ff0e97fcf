"""Per-episode clips of an evaluation (failures first, bounded) and ``eval --report``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.data.video import count_frames
from embodied_mm.envs.presentation import banner_height
from embodied_mm.eval.clips import ClipBudget, ClipRecorder
from embodied_mm.eval.vector_rollout import rollout_batch
from embodied_mm.policies.recipes import make_policy
from embodied_mm.runtime.inference import ChunkResult

ENV = "embodied_mm/ReachObject-v0"


def test_budget_keeps_the_first_failures_and_the_first_success(tmp_path: Path) -> None:
    budget = ClipBudget(tmp_path, max_failures=2, max_successes=1)
    outcomes = [False, True, True, False, False, True]
    assert [budget.take(s) for s in outcomes] == [True, True, False, True, False, False]
    assert budget.spent


def test_clips_are_kept_in_seed_order_whatever_order_the_episodes_end(tmp_path: Path) -> None:
    budget = ClipBudget(tmp_path, max_failures=1, max_successes=1)
    recorder = ClipRecorder(None, [7, 8, 9], ["a", "b", "c"], camera="policy", fps=10,
                            budget=budget)  # fmt: skip
    obs = {"pixels": {"front": np.zeros((3, 16, 16, 3), dtype=np.uint8)}}  # (N, H, W, 3)
    for _ in range(3):
        recorder.capture(obs, range(3), [None] * 3)
    records = [{"success": True}, {"success": True}, {"success": False}]
    for i in (2, 1, 0):  # the last env ends first
        recorder.episode_ended(i, records[i])
    recorder.finish()
    assert [r.get("video") for r in records] == [str(tmp_path / "episode_000007.mp4"), None,
                                                  str(tmp_path / "episode_000009.mp4")]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_000007.mp4",
                                                          "episode_000009.mp4"]  # fmt: skip
    assert count_frames(tmp_path / "episode_000007.mp4") == 3


@pytest.mark.slow
def test_eval_report_has_the_failure_clip_plans_and_presentation_video(tmp_path: Path) -> None:
    checkpoint = tmp_path / "policy"
    make_policy("vla-chunk").save_pretrained(checkpoint)  # untrained: its episodes time out
    out = tmp_path / "eval"
    args = ["eval", "--checkpoint", str(checkpoint), "--env", ENV, "--episodes", "3",
            "--num-envs", "2", "--out", str(out), "--report", "--report-clips", "1", "--plan"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (task,) = json.loads((out / "eval_info.json").read_text())["tasks"]
    records = task["per_episode"]
    failures = [r for r in records if not r["success"]]
    successes = [r for r in records if r["success"]]
    kept = [r["seed"] for r in records if r.get("video")]
    # clips: the first failure and the first success (if any), nothing else left on disk
    assert kept == sorted([failures[0]["seed"]] + [s["seed"] for s in successes[:1]])
    clips = sorted(p.relative_to(out).as_posix() for p in (out / "videos/clips").rglob("*.mp4"))
    assert clips == sorted(r["video"] for r in records if r.get("video"))
    first = failures[0]
    with av.open(str(out / first["video"])) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (480, 360)
    assert count_frames(out / first["video"]) == first["steps"] + 1
    assert all(isinstance(r["plans"], list) for r in records)  # (an untrained model's are "")
    with av.open(task["video"]) as container:  # the task's video: the presentation camera too
        assert container.streams.video[0].width == 480
    page = (out / "report.html").read_text()
    assert re.findall(r'<video [^>]*src="([^"]+)"', page)[0] == first["video"]
    assert _seeds(page)[0] == first["seed"] and first["task"] in page


class PlanningStill:
    """A batched policy that holds the arm still (ee_delta zeros, gripper open) and names a
    new plan every other chunk: ``phase 0``, ``phase 0``, ``phase 1``, ..."""

    chunk_size = 5

    def __init__(self) -> None:
        self.calls = 0

    def infer_batch(self, frames):
        out = []
        for _ in frames:
            actions = np.zeros((self.chunk_size, 7), dtype=np.float32)
            actions[:, 6] = -1.0
            out.append(ChunkResult(actions, plan=f"phase {self.calls // 2}"))
        self.calls += 1
        return out

    def reset(self) -> None:
        pass


def test_batch_records_plans_and_a_clip_with_the_plan_drawn_on(tmp_path: Path) -> None:
    budget = ClipBudget(tmp_path / "clips", max_failures=1, max_successes=1)
    records = rollout_batch(PlanningStill(), ENV, [100_000, 100_001], clips=budget)
    assert [r["success"] for r in records] == [False, False]  # still: the reach times out
    steps = records[0]["steps"]
    calls = -(-steps // PlanningStill.chunk_size)  # one batched call per chunk
    assert records[0]["plans"] == [f"phase {k}" for k in range((calls + 1) // 2)]
    assert records[0]["plans"] == records[1]["plans"]
    assert records[0]["video"].endswith("episode_100000.mp4") and "video" not in records[1]
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["episode_100000.mp4"]
    # frame 0: no plan yet; frames 1-10: "phase 0" (chunks 1, 2); from frame 11: "phase 1"
    with av.open(records[0]["video"]) as container:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert len(frames) == steps + 1 and frames[0].shape == (360, 480, 3)
    h1, h2 = banner_height(1), banner_height(2)

    def plan_line_change(a: int, b: int) -> float:
        return float(np.abs(frames[a][h1:h2] - frames[b][h1:h2]).mean())

    assert plan_line_change(0, 1) > 5 * plan_line_change(1, 6) + 1  # the plan appeared
    assert plan_line_change(1, 11) > 5 * plan_line_change(1, 6) + 0.5  # and changed
    below = float(np.abs(frames[1][h2 + 4 :] - frames[11][h2 + 4 :]).mean())
    assert below < 1.0  # the arm held still: only the banner changed


def _seeds(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'data-seed="(\d+)"', page)]


def test_negative_report_clips_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(tmp_path), "--env", ENV,
                                      "--report", "--report-clips", "-1"])  # fmt: skip
    assert result.exit_code == 2 and "--report-clips must be >= 0" in result.output
