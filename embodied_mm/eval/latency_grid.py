"""Chunk execution against policy latency: every ``--mode`` at each injected latency.

One evaluation per (latency, mode) cell through :func:`~embodied_mm.eval.evaluate.run_eval`,
the same episodes (seeds) in every cell; a latency of L ms becomes ``round(L * hz / 1000)``
control steps of :class:`~embodied_mm.runtime.controller.ControlSpec` (``latency_steps``:
``async`` and ``rtc`` keep playing the queue, ``open_loop`` and ``ensemble`` hold while they
wait). ``async`` and ``rtc`` ask for the next chunk when ``max(refill_at, latency steps)``
actions are left, so that at every latency the queue can last until the chunk arrives, as a
user would set ``--refill-at``.

Each cell keeps its ``eval_info.json`` (``cells/<mode>-<L>ms/``); a cell already there with
the same settings is read back instead of run again, so an interrupted grid continues.
``grid.json`` holds per cell and task the success (Wilson 95% interval), the boundary/within
action-change ratio (mean over episodes) of the arm's action dims and of all of them (the
gripper's included), and the joints' RMS jerk (:mod:`.smoothness`);
``grid.md`` the tables and ``grid.svg`` the plot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embodied_mm.errors import UsageError
from embodied_mm.runtime.chunking import MODES
from embodied_mm.runtime.controller import ControlSpec

DEFAULT_LATENCIES_MS = (0, 100, 200, 300)


def cell_control(mode: str, latency_ms: float, hz: float, refill_at: int) -> ControlSpec:
    """The :class:`ControlSpec` of one cell (module docstring)."""
    steps = round(latency_ms * hz / 1000.0)
    if mode in ("async", "rtc"):
        return ControlSpec(mode, hz, max(refill_at, steps), latency_steps=steps)
    return ControlSpec(mode, hz, refill_at, latency_steps=steps)


def _cell_row(mode: str, latency_ms: float, rel: Path, task: dict[str, Any]) -> dict[str, Any]:
    smooth = task.get("smoothness") or {}
    return {
        "env_id": task["env_id"],
        "mode": mode,
        "latency_ms": latency_ms,
        "episodes": task["episodes"],
        "successes": task["successes"],
        "success_rate": task["success_rate"],
        "ci95": list(task["ci95"]),
        "mean_length": task["mean_length"],
        "boundary_ratio": smooth.get("boundary_ratio_mean"),
        "boundary_ratio_median": smooth.get("boundary_ratio_median"),
        "arm_boundary_ratio": smooth.get("arm_boundary_ratio_mean"),
        "arm_median_boundary_ratio": smooth.get("arm_median_boundary_ratio_mean"),
        "joint_rms_jerk": smooth.get("joint_rms_jerk_mean"),
        "eval_info": (rel / "eval_info.json").as_posix(),
    }


def _finished(path: Path, wanted: dict[str, Any], episodes: int, env_ids: Sequence[str]) -> Any:
    """The cell's eval_info if it was run with these settings (``wanted``: its checkpoint,
    engine, seed and control as eval_info.json records them), else None."""
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    tasks = info.get("tasks", [])
    same = all(info.get(k) == v for k, v in wanted.items())
    same = same and [t["env_id"] for t in tasks] == list(env_ids)
    return info if same and all(t["episodes"] == episodes for t in tasks) else None


def run_latency_grid(
    checkpoint: Path,
    env_ids: list[str],
    episodes: int,
    out_dir: Path,
    modes: Sequence[str] = MODES,
    latencies_ms: Sequence[float] = DEFAULT_LATENCIES_MS,
    hz: float = 20.0,
    refill_at: int = 4,
    engine: str = "mujoco",
    seed: int | None = None,
    num_envs: int = 2,
) -> dict[str, Any]:
    """Run (or read back) every cell and write ``grid.json``, ``grid.md`` and ``grid.svg``
    under ``out_dir``; returns the grid::

        {"checkpoint": str, "engine": str, "hz": float, "episodes_per_cell": int,
         "seconds": float, "cells": [{"env_id", "mode", "latency_ms", "episodes",
         "successes", "success_rate", "ci95", "mean_length", "boundary_ratio",
         "boundary_ratio_median", "arm_boundary_ratio", "arm_median_boundary_ratio",
         "joint_rms_jerk", "eval_info"}]}
    """
    import embodied_mm.envs  # noqa: F401  (registers the ids)
    from embodied_mm.envs.registration import check_env_id
    from embodied_mm.eval.evaluate import HELDOUT_SEED_BASE, run_eval
    from embodied_mm.runtime.inference import LocalPolicy

    if not env_ids:
        raise UsageError("give at least one --env ID (see `embodied-mm envs`)")
    for env_id in env_ids:  # before the policy loads
        check_env_id(env_id)
    if episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {episodes}")
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UsageError(f"unknown mode(s) {unknown or modes}; known: {', '.join(MODES)}")
    if not latencies_ms or any(not 0 <= ms < 60_000 for ms in latencies_ms):
        raise UsageError(f"latencies must be ms in [0, 60000), got {list(latencies_ms)}")
    seed = HELDOUT_SEED_BASE if seed is None else seed
    policy = None
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for ms in latencies_ms:
        for mode in modes:
            rel = Path("cells") / f"{mode}-{ms:g}ms"
            control = cell_control(mode, ms, hz, refill_at)
            wanted = {"checkpoint": str(checkpoint), "engine": engine, "seed": seed,
                      "control": control.as_dict()}  # fmt: skip
            info = _finished(out_dir / rel / "eval_info.json", wanted, episodes, env_ids)
            if info is None:
                if policy is None:
                    policy = LocalPolicy.from_checkpoint(checkpoint)
                info = run_eval(checkpoint, env_ids, engine, episodes, out_dir / rel, seed=seed,
                                num_envs=num_envs, control=control, loaded_policy=policy,
                                videos=False)  # fmt: skip
            rows.extend(_cell_row(mode, ms, rel, t) for t in info["tasks"])
    grid = {
        "checkpoint": str(checkpoint),
        "engine": engine,
        "hz": hz,
        "refill_at": refill_at,
        "episodes_per_cell": episodes,
        "seconds": round(time.perf_counter() - t0, 1),
        "cells": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "grid.json").write_text(json.dumps(grid, indent=2) + "\n")
    (out_dir / "grid.md").write_text(grid_markdown(grid))
    from embodied_mm.report.plots import latency_plot

    (out_dir / "grid.svg").write_text(latency_plot(grid))
    return grid


def grid_markdown(grid: dict[str, Any]) -> str:
    """One table per task: a row per mode x latency with success, boundary ratio and jerk."""
    out: list[str] = []
    for env_id in dict.fromkeys(c["env_id"] for c in grid["cells"]):
        out += [
            f"**{env_id.split('/')[-1]}** ({grid['episodes_per_cell']} episodes per cell)",
            "",
            "| mode | latency | success (95% CI) | boundary/within: arm, median "
            "| arm, mean | all dims, mean | joint RMS jerk (rad/s³) |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in (c for c in grid["cells"] if c["env_id"] == env_id):
            lo, hi = c["ci95"]
            ratio, arm, typical = (
                "—" if c.get(k) is None else f"{c[k]:.2f}"
                for k in ("boundary_ratio", "arm_boundary_ratio", "arm_median_boundary_ratio")
            )
            jerk = "—" if c["joint_rms_jerk"] is None else f"{c['joint_rms_jerk']:.1f}"
            out.append(
                f"| {c['mode']} | {c['latency_ms']:g} ms | {c['successes']}/{c['episodes']} "
                f"({lo:.0%}–{hi:.0%}) | {typical} | {arm} | {ratio} | {jerk} |"
            )
        out.append("")
    return "\n".join(out)
