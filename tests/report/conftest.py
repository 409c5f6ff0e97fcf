"""A small evaluation run on disk, as ``eval --report`` and ``eval --suite`` leave one: real
mp4 clips (our encoder), a plain ``eval_info.json`` and a ``suite.json`` with its cells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embodied_mm.data.video import encode_video
from embodied_mm.eval.stats import wilson_interval


def _clip(path: Path, shade: int) -> None:
    frames = np.full((6, 48, 64, 3), shade, dtype=np.uint8)  # (T, H, W, 3)
    frames[:, 10:20, 10:30] = 255 - shade
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_video(frames, path, fps=10)


def _episode(seed: int, success: bool, video: str | None, plans: list[str]) -> dict:
    record = {"seed": seed, "success": success, "steps": 20 + seed % 7,
              "task": f"pick up the block <{seed}>", "plans": plans,
              "interventions": {} if success else {"workspace": 1},
              "stop_reason": "episode_done"}  # fmt: skip
    if video is not None:
        record["video"] = video
    return record


def _task(env_id: str, records: list[dict]) -> dict:
    n, s = len(records), sum(r["success"] for r in records)
    return {"env_id": env_id, "engine": "mujoco", "split": "train", "episodes": n,
            "successes": s, "success_rate": s / n, "ci95": list(wilson_interval(s, n)),
            "mean_length": float(np.mean([r["steps"] for r in records])),
            "interventions": {}, "video": None, "per_episode": records}  # fmt: skip


def _info(tasks: list[dict]) -> dict:
    return {"checkpoint": "ckpt", "engine": "mujoco", "split": "train", "seed": 100000,
            "num_processes": 1, "control": {"mode": "open_loop", "hz": 20.0},
            "seconds": 12.5, "tasks": tasks,
            "overall": {"episodes": sum(t["episodes"] for t in tasks),
                        "success_rate": float(np.mean([t["success_rate"] for t in tasks])),
                        "interventions": {}}}  # fmt: skip


@pytest.fixture
def plain_run(tmp_path: Path) -> Path:
    """A plain eval: one task, 5 episodes (3 failures, 2 with clips... see below)."""
    run = tmp_path / "run"
    records = []
    for seed, success in ((100000, True), (100001, False), (100002, True), (100003, False),
                          (100004, False)):  # fmt: skip
        video = None
        if seed in (100000, 100001, 100003):  # clips: the first 2 failures and 1 success
            video = f"videos/clips/episode_{seed:06d}.mp4"
            _clip(run / video, 40 if success else 200)
        records.append(_episode(seed, success, video, ["reach the block", "grasp"]))
    (run / "eval_info.json").write_text(json.dumps(_info([_task("embodied_mm/PickLift-v0",
                                                                records)])))  # fmt: skip
    return run


# like a real suite: levels from 1, the unperturbed baseline is its own cell (factor "none")
LEVELS = {"lighting": ["1", "2", "3"], "camera_shift": ["1", "2"]}


@pytest.fixture
def suite_run(tmp_path: Path) -> Path:
    """``eval --suite robustness``: the baseline and 2 factors (3 and 2 levels), 4 episodes
    per cell; level k fails k of them."""
    run = tmp_path / "suite"
    cells = []
    for factor, levels in (("none", ["0"]), *LEVELS.items()):
        for level in levels:
            k = int(level)
            rel = f"cells/{factor}-{level}/eval_info.json"
            seeds = range(100000, 100004)
            records = []
            for j, seed in enumerate(seeds):
                success = j >= k  # fewer successes at harder levels
                video = None
                if not success:
                    video = f"videos/episode_{seed:06d}.mp4"
                    _clip(run / Path(rel).parent / video, 180)
                records.append(_episode(seed, success, video, []))
            info = _info([_task("embodied_mm/PickLift-v0", records)])
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            (run / rel).write_text(json.dumps(info))
            s = sum(r["success"] for r in records)
            cells.append({"env_id": "embodied_mm/PickLift-v0", "factor": factor,
                          "level": level, "level_value": 0.1 * k, "episodes": 4,
                          "successes": s, "success_rate": s / 4,
                          "ci95": list(wilson_interval(s, 4)), "eval_info": rel})  # fmt: skip
    suite = {"suite": "robustness", "checkpoint": "ckpt", "policy_commit": "abc123",
             "engine": "mujoco", "mode": "open_loop", "episodes_per_cell": 4,
             "seconds": 99.0, "cells": cells}  # fmt: skip
    run.mkdir(parents=True, exist_ok=True)
    (run / "suite.json").write_text(json.dumps(suite))
    return run
