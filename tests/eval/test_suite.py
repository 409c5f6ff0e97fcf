"""``eval --suite robustness``: suite.json's schema, one evaluation per cell on the same seeds,
the table, ``eval-compare`` on two suites, and the one-line errors of the options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embodied_mm.errors import UsageError
from embodied_mm.eval.stats import wilson_interval
from embodied_mm.eval.suite import compare_suites, run_suite, suite_cells, suite_table

CHECKPOINT = Path(__file__).resolve().parents[2] / "sim_assets" / "checkpoints" / "default"
ENV_ID = "embodied_mm/ReachObject-v0"
CLI = [sys.executable, "-m", "embodied_mm.cli.main"]
ENV = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}

CELL_KEYS = {"env_id", "factor", "level", "level_value", "episodes", "successes",
             "success_rate", "ci95", "eval_info"}  # fmt: skip
SUITE_KEYS = {"suite", "checkpoint", "policy_commit", "engine", "mode", "episodes_per_cell",
              "seconds", "cells"}  # fmt: skip


def test_cells_cover_every_factor_level_once_and_quick_one_level_each():
    from embodied_mm.envs.perturbations import FACTORS

    full, quick = suite_cells(), suite_cells(quick=True)
    assert full[0] == quick[0] == ("none", 0)
    assert len(full) == 1 + sum(len(f.levels) for f in FACTORS.values())
    assert len(set(full)) == len(full)
    assert [c[0] for c in quick[1:]] == list(FACTORS)
    assert set(quick) <= set(full)


@pytest.mark.slow
def test_a_tiny_suite_writes_suite_json_with_the_schema(tmp_path):
    result = run_suite(CHECKPOINT, [ENV_ID], "mujoco", episodes=2, out_dir=tmp_path,
                       factors=["typos", "action_latency"], num_envs=1)  # fmt: skip
    on_disk = json.loads((tmp_path / "suite.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert set(on_disk) == SUITE_KEYS
    assert on_disk["suite"] == "robustness" and on_disk["engine"] == "mujoco"
    assert on_disk["mode"] == "open_loop" and on_disk["episodes_per_cell"] == 2
    assert on_disk["policy_commit"] is None or len(on_disk["policy_commit"]) == 40
    cells = on_disk["cells"]
    assert [(c["factor"], c["level"]) for c in cells] == [
        ("none", "0"), ("action_latency", "1"), ("action_latency", "2"), ("typos", "1"),
        ("typos", "2"),
    ]  # fmt: skip
    seeds = None
    for c in cells:
        assert set(c) == CELL_KEYS and c["env_id"] == ENV_ID and c["episodes"] == 2
        assert c["success_rate"] == c["successes"] / 2
        assert c["ci95"] == list(wilson_interval(c["successes"], 2))
        info = json.loads((tmp_path / c["eval_info"]).read_text())
        expected = {} if c["factor"] == "none" else {c["factor"]: int(c["level"])}
        assert {k: v["level"] for k, v in info["perturb"].items()} == expected
        (task,) = info["tasks"]
        assert task["successes"] == c["successes"]
        assert not (tmp_path / c["eval_info"]).parent.joinpath("videos").exists()
        cell_seeds = [r["seed"] for r in task["per_episode"]]
        assert seeds is None or cell_seeds == seeds  # the same episodes in every cell
        seeds = cell_seeds
    base_task = json.loads((tmp_path / cells[0]["eval_info"]).read_text())["tasks"][0]
    for r in base_task["per_episode"]:  # a reach that succeeded ended at the named cube
        assert r["ended_near"] == "target" if r["success"] else "ended_near" in r
    typo_task = json.loads((tmp_path / cells[4]["eval_info"]).read_text())["tasks"][0]
    for b, t in zip(base_task["per_episode"], typo_task["per_episode"], strict=True):
        assert b["task"] != t["task"]  # the policy read the perturbed instruction
    table = suite_table(on_disk)
    assert "action_latency   2" in table and "ReachObject-v0" in table
    markdown = (tmp_path / "suite.md").read_text().splitlines()
    assert markdown[0] == "| factor | level | value | `ReachObject-v0` |"
    assert len(markdown) == 2 + len(cells) and markdown[3].startswith(
        "| `action_latency` | 1 | 1 |"
    )


def _suite(counts: dict[tuple[str, str], tuple[int, int]]) -> dict:
    cells = []
    for (factor, level), (s, n) in counts.items():
        cells.append({"env_id": ENV_ID, "factor": factor, "level": level, "level_value": 1.0,
                      "episodes": n, "successes": s, "success_rate": s / n,
                      "ci95": list(wilson_interval(s, n)), "eval_info": "x"})  # fmt: skip
    return {"suite": "robustness", "checkpoint": "c", "policy_commit": None, "engine": "mujoco",
            "mode": "open_loop", "episodes_per_cell": 20, "seconds": 1.0, "cells": cells}  # fmt: skip


def test_compare_suites_flags_only_the_worse_cell():
    base = _suite({("none", "0"): (19, 20), ("blur", "1"): (18, 20), ("typos", "1"): (10, 20)})
    cand = _suite({("none", "0"): (19, 20), ("blur", "1"): (6, 20), ("typos", "1"): (9, 20),
                   ("lighting", "1"): (0, 20)})  # fmt: skip
    flags = {r["cell"][1]: r["regression"] for r in compare_suites(base, cand)}
    assert flags == {"none": False, "blur": True, "typos": False, "lighting": False}
    with pytest.raises(UsageError, match=r"not a suite\.json"):
        compare_suites(base, {"tasks": []})


def test_eval_compare_cli_on_two_suites(tmp_path):
    base = _suite({("none", "0"): (19, 20), ("blur", "1"): (18, 20)})
    worse = _suite({("none", "0"): (19, 20), ("blur", "1"): (4, 20)})
    (tmp_path / "a.json").write_text(json.dumps(base))
    (tmp_path / "b.json").write_text(json.dumps(worse))
    same = subprocess.run([*CLI, "eval-compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")],
                          capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
    assert same.returncode == 0, same.stderr
    proc = subprocess.run([*CLI, "eval-compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")],
                          capture_output=True, text=True, env=ENV, timeout=120)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    (flagged,) = [line for line in proc.stdout.splitlines() if "REGRESSION" in line]
    assert "blur" in flagged and "90% -> 20%" in flagged


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--perturb", "fog=1"], "unknown perturbation 'fog'; known: camera_shift, lighting"),
        (
            ["--perturb", "blur=9"],
            "perturbation blur has no level '9'; levels: 0 (none), 1 (1.0 px)",
        ),
        (["--suite", "speed"], "unknown suite 'speed'; known: robustness"),
        (["--suite", "robustness", "--factors", "fog"], "unknown perturbation 'fog'"),
        (["--quick"], "--quick and --factors go with --suite"),
    ],
)
def test_bad_perturbation_options_are_one_line_errors(args, message):
    cmd = [*CLI, "eval", "--checkpoint", str(CHECKPOINT), "--env", ENV_ID, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_ended_near_names_the_object_under_the_tcp():
    from embodied_mm.eval.vector_rollout import ended_near
    from embodied_mm.runtime.adapters.sim import TCP_XYZ

    state = np.zeros(15)
    state[TCP_XYZ] = (0.5, 0.1, 0.3)
    starts = {"target": np.array([0.5, 0.12, 0.02]), "other": np.array([0.4, 0.1, 0.02])}
    assert ended_near(starts, state) == "target"
    state[TCP_XYZ] = (0.45, -0.2, 0.05)
    assert ended_near(starts, state) is None
