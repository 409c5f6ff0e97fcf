"""``embodied-mm eval --suite robustness``: the same policy under one perturbation factor at a
time, each at its levels, plus the unperturbed baseline.

Every cell (factor × level) is one ordinary evaluation (:func:`~embodied_mm.eval.evaluate.
run_eval`, the same controller stack and the same episode seeds for every cell) with
``perturb={factor: level}``; its ``eval_info.json`` goes to ``cells/<factor>-<level>/``.
``suite.json`` in the output directory lists every task × factor × level with its success
count and 95% Wilson interval (schema: :func:`run_suite`). ``--quick`` runs one level per
factor (its second, or its only one). :func:`compare_suites` flags a regression on any cell,
with the rule ``eval-compare`` applies to tasks.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from embodied_mm.errors import UsageError
from embodied_mm.eval.evaluate import HELDOUT_SEED_BASE, is_regression, run_eval
from embodied_mm.runtime.controller import ControlSpec

SUITES = ("robustness",)
BASELINE = ("none", 0)  # the unperturbed cell


def suite_cells(quick: bool = False) -> list[tuple[str, int]]:
    """(factor, level) of every cell, the baseline first, then the factors in registry
    order; ``quick``: one level per factor (level 2 where there is one, else level 1)."""
    from embodied_mm.envs.perturbations import FACTORS

    cells = [BASELINE]
    for name, factor in FACTORS.items():
        levels = sorted(factor.levels)
        cells += [(name, min(2, levels[-1]))] if quick else [(name, k) for k in levels]
    return cells


def parse_factor_list(text: str | None) -> list[str] | None:
    """``"blur,typos"`` (``--factors``) → factor names, checked; ``None``/empty: all."""
    from embodied_mm.envs.perturbations import FACTORS

    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FACTORS]
    if unknown:
        raise UsageError(f"unknown perturbation {unknown[0]!r}; known: {', '.join(FACTORS)}")
    return names


def policy_commit(checkpoint: Path) -> str | None:
    """The last git commit that touched the checkpoint directory, when it is in a git
    work tree with no uncommitted change to it; else ``None``."""
    path = Path(checkpoint).resolve()
    if not path.is_dir():
        return None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True,
                                  timeout=30, check=False)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("log", "-1", "--format=%H", "--", ".")
    dirty = git("status", "--porcelain", "--", ".")
    return commit if commit and dirty == "" else None


def _level_value(factor: str, level: int) -> float | str:
    from embodied_mm.envs.perturbations import FACTORS

    return 0.0 if factor == BASELINE[0] else FACTORS[factor].levels[level]


def run_suite(
    checkpoint: Path,
    env_ids: list[str],
    engine: str,
    episodes: int,
    out_dir: Path,
    suite: str = "robustness",
    quick: bool = False,
    factors: list[str] | None = None,
    split: str = "train",
    seed: int = HELDOUT_SEED_BASE,
    num_envs: int = 2,
    control: ControlSpec | None = None,
    progress_bar: bool | None = False,
    clip_failures: int = 0,
    video_camera: str = "presentation",
    instruction: str | None = None,
    with_plan: bool | None = False,
) -> dict[str, Any] | None:
    """Run every cell of the suite (``factors``: only these, plus the baseline) and write
    ``out_dir/suite.json`` (and the table as ``suite.md``); returns it on the main process (``None`` elsewhere)::

        {"suite": "robustness", "checkpoint": str, "policy_commit": str | None,
         "engine": str, "mode": str, "episodes_per_cell": int, "seconds": float,
         "cells": [{"env_id": str, "factor": str, "level": str,
                    "level_value": float | str, "episodes": int, "successes": int,
                    "success_rate": float, "ci95": [lo, hi],
                    "eval_info": "cells/<factor>-<level>/eval_info.json"}]}

    The baseline cell has factor ``"none"``, level ``"0"``. With ``clip_failures`` > 0 each
    cell also keeps clips of its first failures and success (``eval --report``; see
    :func:`~embodied_mm.eval.evaluate.run_eval`), from ``video_camera``. ``instruction``,
    ``with_plan``: as run_eval's, for every cell.
    """
    from accelerate import PartialState

    import embodied_mm.envs  # noqa: F401  (registers the ids)
    from embodied_mm.envs.registration import check_env_id
    from embodied_mm.runtime.inference import LocalPolicy

    if suite not in SUITES:
        raise UsageError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    if not env_ids:
        raise UsageError("give at least one --env ID (see `embodied-mm envs`)")
    for env_id in env_ids:  # before the policy loads
        check_env_id(env_id)
    cells = [c for c in suite_cells(quick) if c == BASELINE or factors is None or c[0] in factors]
    control = control or ControlSpec()
    policy = LocalPolicy.from_checkpoint(checkpoint, with_plan=with_plan)
    state = PartialState(cpu=True)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for factor, level in cells:
        rel = Path("cells") / f"{factor}-{level}"
        perturb = {} if (factor, level) == BASELINE else {factor: level}
        info = run_eval(checkpoint, env_ids, engine, episodes, out_dir / rel, split, seed,
                        num_envs, control, progress_bar=progress_bar, perturb=perturb,
                        loaded_policy=policy, videos=clip_failures > 0,
                        clip_failures=clip_failures, video_camera=video_camera,
                        instruction=instruction)  # fmt: skip
        if info is None:  # not the main process
            continue
        for t in info["tasks"]:
            rows.append({"env_id": t["env_id"], "factor": factor, "level": str(level),
                         "level_value": _level_value(factor, level), "episodes": t["episodes"],
                         "successes": t["successes"], "success_rate": t["success_rate"],
                         "ci95": list(t["ci95"]),
                         "eval_info": (rel / "eval_info.json").as_posix()})  # fmt: skip
    if not state.is_main_process:
        return None
    result = {
        "suite": suite,
        "checkpoint": str(checkpoint),
        "policy_commit": policy_commit(checkpoint),
        "engine": engine,
        "mode": control.mode,
        "episodes_per_cell": episodes,
        "seconds": time.perf_counter() - t0,
        "cells": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "suite.json").write_text(json.dumps(result, indent=2))
    (out_dir / "suite.md").write_text(suite_markdown(result) + "\n")
    return result


def suite_table(result: dict[str, Any]) -> str:
    """The suite as a text table: one row per factor × level, one column per task
    (``successes/episodes rate [lo-hi]``)."""
    env_ids = list(dict.fromkeys(c["env_id"] for c in result["cells"]))
    keys = list(dict.fromkeys((c["factor"], c["level"]) for c in result["cells"]))
    by = {(c["env_id"], c["factor"], c["level"]): c for c in result["cells"]}
    values = {(c["factor"], c["level"]): c["level_value"] for c in result["cells"]}
    short = [e.split("/")[-1] for e in env_ids]
    header = f"{'factor':16s} {'level':5s} {'value':>20s}  " + "  ".join(f"{s:>22s}" for s in short)
    lines = [header, "-" * len(header)]
    for factor, level in keys:
        cols = []
        for env_id in env_ids:
            c = by.get((env_id, factor, level))
            if c is None:
                cols.append(f"{'n/a':>22s}")
                continue
            lo, hi = c["ci95"]
            cols.append(f"{c['successes']:>3d}/{c['episodes']:<3d} {c['success_rate']:4.0%} "
                        f"[{lo:.0%}-{hi:.0%}]".rjust(22))  # fmt: skip
        lines.append(
            f"{factor:16s} {level:5s} {values[(factor, level)]!s:>20s}  " + "  ".join(cols)
        )
    return "\n".join(lines)


def suite_markdown(result: dict[str, Any]) -> str:
    """The suite as a Markdown table (rows factor × level, a column per task:
    ``successes/episodes (lo-hi %)``), as the docs publish it."""
    env_ids = list(dict.fromkeys(c["env_id"] for c in result["cells"]))
    keys = list(dict.fromkeys((c["factor"], c["level"]) for c in result["cells"]))
    by = {(c["env_id"], c["factor"], c["level"]): c for c in result["cells"]}
    values = {(c["factor"], c["level"]): c["level_value"] for c in result["cells"]}
    head = ["factor", "level", "value", *(f"`{e.split('/')[-1]}`" for e in env_ids)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for factor, level in keys:
        cols = []
        for env_id in env_ids:
            c = by.get((env_id, factor, level))
            if c is None:
                cols.append("n/a")
                continue
            lo, hi = c["ci95"]
            cols.append(f"{c['successes']}/{c['episodes']} ({lo:.0%}-{hi:.0%})")
        name = "(none)" if factor == BASELINE[0] else f"`{factor}`"
        value = "" if factor == BASELINE[0] else str(values[(factor, level)])
        lines.append("| " + " | ".join([name, level, value, *cols]) + " |")
    return "\n".join(lines)


def is_suite(info: dict[str, Any]) -> bool:
    return isinstance(info, dict) and "suite" in info and isinstance(info.get("cells"), list)


def compare_suites(
    baseline: dict[str, Any], candidate: dict[str, Any], max_drop: float = 0.1
) -> list[dict[str, Any]]:
    """Per candidate cell: both rates and ``regression`` (the rule of
    :func:`~embodied_mm.eval.evaluate.compare_evals`: lower by more than ``max_drop`` and the
    candidate's 95% interval wholly below the baseline's rate). A cell the baseline lacks has
    ``baseline: None`` and is never a regression."""
    for name, info in (("baseline", baseline), ("candidate", candidate)):
        if not is_suite(info):
            raise UsageError(f"the {name} is not a suite.json (no 'suite' and 'cells')")
    if baseline["engine"] != candidate["engine"]:
        raise UsageError(
            f"the suites ran on different engines ({baseline['engine']} vs {candidate['engine']})"
        )
    base = {(c["env_id"], c["factor"], c["level"]): c for c in baseline["cells"]}
    rows = []
    for c in candidate["cells"]:
        key = (c["env_id"], c["factor"], c["level"])
        b = base.get(key)
        rows.append({
            "cell": key,
            "baseline": None if b is None else b["success_rate"],
            "candidate": c["success_rate"],
            "regression": b is not None
            and is_regression(b["success_rate"], c["success_rate"], c["ci95"], max_drop),
        })  # fmt: skip
    return rows
