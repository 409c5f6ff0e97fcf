"""``embodied-mm eval-goals``: does the goal head locate each task's places in scenes it never saw?

The grounding stage (``train --stage ground``) trains the goal head on each episode's first
frame to predict where the gripper is at the end of the episode (and of its first phase:
``goal_waypoints``). That is the signal the keypoints learn to find the named object from, so
a grounding that only memorised its training scenes dooms the instruction stage after it. On
held-out demonstrations (``embodied-mm record --seed 200000 ...``) and, for comparison, on
training ones, this scores each waypoint's error in the state's units (metres for our sim's
gripper x, y) against the *spread*: the error of always answering the mean target of those
episodes. An error near the spread means the head has not located anything; well below it,
it has. One dataset per task; the first frame of each of its first ``episodes`` episodes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embodied_mm.errors import UsageError
from embodied_mm.features import WAYPOINT_KEYS


def first_frames(data: Any, episodes: int) -> list[int]:
    """Rows of the first frame of each of the dataset's first ``episodes`` episodes."""
    frame_index = np.asarray(data.frames.columns["frame_index"])
    return [int(r) for r in np.nonzero(frame_index == 0)[0][:episodes]]


def waypoint_errors(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """``predicted`` and ``target`` (N, G) → mean and median Euclidean error, and the spread
    (mean distance of the targets from their mean)."""
    error = np.linalg.norm(predicted - target, axis=1)  # (N,)
    spread = np.linalg.norm(target - target.mean(axis=0), axis=1)  # (N,)
    return {
        "mean_error": float(error.mean()),
        "median_error": float(np.median(error)),
        "spread": float(spread.mean()),
    }


def score_goals(policy: Any, root: Path, episodes: int, batch_size: int = 64) -> dict[str, Any]:
    """The goal head on the first frames of the dataset at ``root``:
    ``{"dataset", "episodes", "waypoints": {name: waypoint_errors(...)}}``."""
    from embodied_mm.data.torch_dataset import build_window_dataset
    from embodied_mm.train.trainer import collate

    data = build_window_dataset(
        root, chunk_size=policy.config.chunk_size, final_state=True, image_format="uint8"
    )
    rows = first_frames(data, episodes)
    if not rows:
        raise UsageError(f"dataset {root} holds no episodes")
    names = list(policy.config.goal_waypoints)
    preds, targets = [], []
    for b in range(0, len(rows), batch_size):
        batch = collate([data[r] for r in rows[b : b + batch_size]])
        preds.append(policy.predict_goals(batch).cpu().numpy())  # (B, W, G)
        targets.append(
            np.stack([batch[WAYPOINT_KEYS[w]][:, policy.goal_dims].numpy() for w in names], 1)
        )  # (B, W, G)
    pred, target = np.concatenate(preds), np.concatenate(targets)
    return {
        "dataset": str(root),
        "episodes": len(rows),
        "waypoints": {w: waypoint_errors(pred[:, i], target[:, i]) for i, w in enumerate(names)},
    }


def evaluate_goals(
    checkpoint: Path,
    datasets: Sequence[Path],
    episodes: int,
    out_dir: Path | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> dict[str, Any]:
    """Score the checkpoint's goal head on each dataset (one task each; :func:`score_goals`),
    written to ``out_dir/goal_error.json``::

        {"checkpoint": str, "goal_dims": [int], "seconds": float,
         "tasks": [{"task": <dataset directory name>, "dataset": str, "episodes": int,
                    "waypoints": {"final": {"mean_error", "median_error", "spread"}, ...}}]}

    Raises:
        UsageError: an ONNX export, a policy without a goal head, ``episodes`` < 1, no
            datasets, or a directory that is not a dataset.
    """
    from embodied_mm.data.reader import DatasetMeta
    from embodied_mm.export.manifest import MANIFEST_FILE
    from embodied_mm.runtime.inference import load_policy

    if episodes < 1 or batch_size < 1:
        raise UsageError(f"--episodes and --batch-size must be >= 1, got {episodes}, {batch_size}")
    if (Path(checkpoint) / MANIFEST_FILE).is_file():
        raise UsageError(f"{checkpoint} is an ONNX export: the goal head is in the PyTorch one")
    if not datasets:
        raise UsageError("give at least one --dataset DIR (comma-separated for several)")
    for root in datasets:  # before the policy loads
        DatasetMeta(Path(root))
    policy = load_policy(checkpoint, device=device)
    if getattr(policy, "goal_head", None) is None:
        raise UsageError(
            f"{checkpoint} has no goal head: it was trained with goal_loss_weight 0 "
            "(eval-goals scores the grounding stage's head)"
        )
    t0 = time.perf_counter()
    tasks = [
        {"task": Path(root).name, **score_goals(policy, Path(root), episodes, batch_size)}
        for root in datasets
    ]
    info = {
        "checkpoint": str(checkpoint),
        "goal_dims": list(policy.goal_dims),
        "seconds": time.perf_counter() - t0,
        "tasks": tasks,
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "goal_error.json").write_text(json.dumps(info, indent=2))
    return info


def goal_table(info: dict[str, Any]) -> str:
    """A line per task and waypoint: mean and median error against the spread."""
    lines = []
    for t in info["tasks"]:
        for w, r in t["waypoints"].items():
            lines.append(
                f"{t['task']:24s} {w:12s} error mean {r['mean_error']:.4f} median "
                f"{r['median_error']:.4f}  spread {r['spread']:.4f}  ({t['episodes']} episodes)"
            )
    return "\n".join(lines)
