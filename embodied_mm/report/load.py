"""Reading an evaluation run directory for the report: ``eval_info.json`` and, from
``eval --suite``, ``suite.json`` (per factor × level cells, each with its own
``eval_info.json``). Missing or garbled files are one-line :class:`UsageError` s."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embodied_mm.errors import UsageError

EVAL_INFO = "eval_info.json"
SUITE = "suite.json"
REPORT = "report.html"
_CELL_KEYS = ("env_id", "factor", "level", "episodes", "successes", "success_rate", "ci95")


@dataclass
class EpisodeGroup:
    """The episodes of one task of one evaluation (a plain eval, or one suite cell)."""

    title: str
    base_dir: Path  # where the eval_info.json that lists them lies
    task: dict[str, Any]


@dataclass
class RunData:
    run_dir: Path
    info: dict[str, Any] | None  # eval_info.json of a plain eval
    suite: dict[str, Any] | None  # suite.json
    groups: list[EpisodeGroup] = field(default_factory=list)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no {what} (run `embodied-mm eval ... --out DIR` first)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not a readable {what} ({e})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a {what} holds a JSON object, found {type(data).__name__}")
    return data


def _check_info(info: dict[str, Any], path: Path) -> None:
    tasks = info.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise UsageError(f"{path}: eval_info.json needs a 'tasks' list of objects")
    for t in tasks:
        missing = [k for k in ("env_id", "episodes", "successes", "ci95") if k not in t]
        if missing:
            raise UsageError(f"{path}: a task lacks {', '.join(missing)}")
        if not isinstance(t.get("per_episode", []), list):
            raise UsageError(f"{path}: {t['env_id']}: 'per_episode' must be a list")


def _check_suite(suite: dict[str, Any], path: Path) -> None:
    cells = suite.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise UsageError(f"{path}: suite.json needs a 'cells' list of objects")
    for c in cells:
        missing = [k for k in _CELL_KEYS if k not in c]
        if missing:
            raise UsageError(f"{path}: a cell lacks {', '.join(missing)}")


def load_run(run_dir: Path) -> RunData:
    """The evaluation in ``run_dir``: its ``eval_info.json``, its ``suite.json``, or both."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    info_path, suite_path = run_dir / EVAL_INFO, run_dir / SUITE
    if not info_path.exists() and not suite_path.exists():
        raise UsageError(f"{run_dir}: neither {EVAL_INFO} nor {SUITE} (not an eval output dir)")
    info = suite = None
    groups: list[EpisodeGroup] = []
    if info_path.exists():
        info = _read_json(info_path, EVAL_INFO)
        _check_info(info, info_path)
        groups += [EpisodeGroup(t["env_id"], run_dir, t) for t in info["tasks"]]
    if suite_path.exists():
        suite = _read_json(suite_path, SUITE)
        _check_suite(suite, suite_path)
        if info is None:  # the cells' own eval_info.json files hold the episodes
            for c in suite["cells"]:
                rel = c.get("eval_info")
                if not rel:
                    continue
                path = run_dir / rel
                cell_info = _read_json(path, EVAL_INFO)
                _check_info(cell_info, path)
                title = f"{c['env_id']} · {c['factor']} = {c['level']}"
                groups += [EpisodeGroup(title, path.parent, t) for t in cell_info["tasks"]]
    return RunData(run_dir, info, suite, groups)
