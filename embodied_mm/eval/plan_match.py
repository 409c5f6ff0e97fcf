"""``embodied-mm eval-plans``: how often the policy's plan text is exactly the expert's phase label.

Scripted experts record the phase they are in beside every action (the dataset's ``plan``
column, :mod:`embodied_mm.envs.expert`). On held-out demonstrations (recorded with seeds the
training demos never used, e.g. ``embodied-mm record --seed 200000 ...``) the policy sees each
frame's cameras, state and instruction and generates its plan greedily
(``VLAPolicy.generate_plan``); a frame matches when the text equals the label exactly
(surrounding whitespace ignored, nothing else). Rates come per task (one dataset per task)
and overall (all scored frames pooled), each with its 95% Wilson interval; frames without a
label are not scored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embodied_mm.errors import UsageError
from embodied_mm.eval.stats import wilson_interval
from embodied_mm.features import PLAN


def plan_matches(predicted: Sequence[str], expected: Sequence[str]) -> list[bool]:
    """Per frame: the predicted plan is exactly the expected label (whitespace at either end
    ignored)."""
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predicted plans for {len(expected)} labels")
    return [p.strip() == e.strip() for p, e in zip(predicted, expected, strict=True)]


def match_summary(matches: Sequence[bool]) -> dict[str, Any]:
    """``{"frames", "matches", "exact_match", "ci95"}`` of per-frame results (rate and
    interval ``None`` for no frames)."""
    n, k = len(matches), int(sum(matches))
    if n == 0:
        return {"frames": 0, "matches": 0, "exact_match": None, "ci95": None}
    return {"frames": n, "matches": k, "exact_match": k / n, "ci95": list(wilson_interval(k, n))}


def episode_seeds(root: Path) -> dict[int, int]:
    """Episode index → the seed it was recorded with (our episodes table's ``seed`` column;
    empty for a dataset without one)."""
    import pandas as pd

    files = sorted(Path(root).glob("meta/episodes/chunk-*/file-*.parquet"))
    if not files:
        return {}
    table = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
    if "seed" not in table.columns:
        return {}
    return {int(e): int(s) for e, s in zip(table["episode_index"], table["seed"], strict=True)}


def labelled_episodes(root: Path, episodes: int) -> list[int]:
    """The first ``episodes`` episode indices of the dataset at ``root``.

    Raises:
        UsageError: not a dataset (the file at fault named), no ``plan`` column, no episodes.
    """
    from embodied_mm.data.reader import DatasetMeta

    meta = DatasetMeta(root)  # not a dataset: a DatasetFormatError (a UsageError)
    if PLAN not in meta.features:
        raise UsageError(
            f"dataset {root} has no {PLAN!r} column: record it with `embodied-mm record` "
            "(scripted experts label every frame with their phase)"
        )
    chosen = [e.episode_index for e in meta.episodes[:episodes]]
    if not chosen:
        raise UsageError(f"dataset {root} holds no episodes")
    return chosen


def _frames(dataset: Any, every: int) -> list[int]:
    """Rows of ``dataset`` to score: every ``every``-th frame of each episode (from its first)."""
    frame_index = np.asarray(dataset.frames.columns["frame_index"])
    return [int(r) for r in np.nonzero(frame_index % every == 0)[0]]


def score_dataset(
    policy: Any, root: Path, episodes: int, every: int = 1, batch_size: int = 32
) -> dict[str, Any]:
    """The first ``episodes`` episodes of the dataset at ``root``, every ``every``-th frame:
    :func:`match_summary` plus ``dataset``, ``episodes``, ``seeds`` (first, last) and
    ``examples`` (up to 5 mismatches: frame, label, prediction)."""
    from embodied_mm.data.torch_dataset import LeRobotWindowDataset
    from embodied_mm.train.trainer import collate

    chosen = labelled_episodes(Path(root), episodes)
    data = LeRobotWindowDataset(root, {}, episodes=chosen, image_format="uint8")
    rows = [r for r in _frames(data, every) if data.frames.columns[PLAN][r]]
    matches: list[bool] = []
    examples: list[dict[str, Any]] = []
    for b in range(0, len(rows), batch_size):
        items = [data[r] for r in rows[b : b + batch_size]]
        batch = collate(items)
        labels = [str(x) for x in batch.pop(PLAN)]
        predicted = policy.generate_plan(batch)  # greedy, as deploy and eval ask for plans
        for item, label, guess, ok in zip(items, labels, predicted,
                                          plan_matches(predicted, labels), strict=True):  # fmt: skip
            matches.append(ok)
            if not ok and len(examples) < 5:
                examples.append({"episode": int(item["episode_index"]),
                                 "frame": int(item["frame_index"]), "label": label,
                                 "predicted": guess})  # fmt: skip
    seeds = episode_seeds(Path(root))
    used = [seeds[e] for e in chosen if e in seeds]
    return {
        "dataset": str(root),
        "episodes": len(chosen),
        "seeds": [min(used), max(used)] if used else None,
        **match_summary(matches),
        "examples": examples,
    }


def evaluate_plans(
    checkpoint: Path,
    datasets: Sequence[Path],
    episodes: int,
    out_dir: Path | None = None,
    every: int = 1,
    batch_size: int = 32,
    device: str | None = None,
) -> dict[str, Any]:
    """Score the checkpoint's plans on each dataset (one task each; :func:`score_dataset`)
    and overall (every scored frame pooled); written to ``out_dir/plan_match.json``::

        {"checkpoint": str, "every": int, "seconds": float,
         "tasks": [{"task": <dataset directory name>, "dataset": str, "episodes": int,
                    "seeds": [first, last] | None, "frames": int, "matches": int,
                    "exact_match": float, "ci95": [lo, hi], "examples": [...]}],
         "overall": {"frames", "matches", "exact_match", "ci95"}}
    """
    from embodied_mm.export.manifest import MANIFEST_FILE
    from embodied_mm.runtime.inference import load_policy

    for name, value in (("--episodes", episodes), ("--every", every),
                        ("--batch-size", batch_size)):  # fmt: skip
        if value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")
    if (Path(checkpoint) / MANIFEST_FILE).is_file():
        raise UsageError(f"{checkpoint} is an ONNX export: plans need the PyTorch checkpoint")
    if not datasets:
        raise UsageError("give at least one --dataset DIR (comma-separated for several)")
    for root in datasets:  # before the policy loads
        labelled_episodes(Path(root), episodes)
    policy = load_policy(checkpoint, device=device)
    t0 = time.perf_counter()
    tasks, pooled = [], []
    for root in datasets:
        result = score_dataset(policy, Path(root), episodes, every, batch_size)
        tasks.append({"task": Path(root).name, **result})
        pooled += [True] * result["matches"] + [False] * (result["frames"] - result["matches"])
    info = {
        "checkpoint": str(checkpoint),
        "every": every,
        "seconds": time.perf_counter() - t0,
        "tasks": tasks,
        "overall": match_summary(pooled),
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "plan_match.json").write_text(json.dumps(info, indent=2))
    return info


def plan_table(info: dict[str, Any]) -> str:
    """The per-task lines of :func:`evaluate_plans`' result, then the overall one."""

    def line(name: str, r: dict[str, Any]) -> str:
        if not r["frames"]:
            return f"{name:24s} no labelled frames"
        lo, hi = r["ci95"]
        return (f"{name:24s} plan exact match {r['exact_match']:.1%} ({r['matches']}/"
                f"{r['frames']} frames, 95% CI {lo:.1%}-{hi:.1%})")  # fmt: skip

    return "\n".join(
        [*(line(t["task"], t) for t in info["tasks"]), line("overall", info["overall"])]
    )
