"""``embodied-mm eval-actions``: which action dims has the policy learnt, on the expert's states?

A success rate says that a policy fails, not where. On demonstration frames (the states the
scripted expert visited, so no compounding error), this compares the first action of the
policy's chunk with the expert's, per action dim: the mean absolute error, against the *spread*
(the error of always answering that dim's median over the frames scored), and how often the two
have the same sign where the expert's action is clearly non-zero (|a| > ``SIGN_MIN``). An
error near the spread means the dim was not learnt: the policy answers the same whatever the
scene. It scores each episode's first frame (where the policy must read the scene to choose
its way, e.g. which way to turn the gripper) and every frame, separately. One dataset per task;
its first ``episodes`` episodes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embodied_mm.errors import UsageError
from embodied_mm.eval.goal_error import first_frames
from embodied_mm.features import ACTION

SIGN_MIN = 0.1  # |expert action| above which its sign counts (ee_delta actions are in [-1, 1])


def dim_errors(predicted: np.ndarray, target: np.ndarray) -> dict[str, list[float | None]]:
    """``predicted`` and ``target`` (N, D) → per dim (D lists): ``mean_abs_error``, ``spread``
    (mean |target - median(target)|) and ``sign_agreement`` (None where no target is above
    :data:`SIGN_MIN`)."""
    error = np.abs(predicted - target).mean(axis=0)  # (D,)
    spread = np.abs(target - np.median(target, axis=0)).mean(axis=0)  # (D,)
    clear = np.abs(target) > SIGN_MIN  # (N, D)
    same = np.sign(predicted) == np.sign(target)  # (N, D)
    agree = [float(same[clear[:, d], d].mean()) if clear[:, d].any() else None
             for d in range(target.shape[1])]  # fmt: skip
    return {
        "mean_abs_error": [float(x) for x in error],
        "spread": [float(x) for x in spread],
        "sign_agreement": agree,
    }


def score_actions(policy: Any, root: Path, episodes: int, batch_size: int = 32) -> dict[str, Any]:
    """The policy's first chunk action on the first ``episodes`` episodes of the dataset at
    ``root``: ``{"dataset", "episodes", "frames", "first_frames": dim_errors(...),
    "all_frames": dim_errors(...)}``."""
    from embodied_mm.data.reader import DatasetMeta
    from embodied_mm.data.torch_dataset import LeRobotWindowDataset
    from embodied_mm.train.trainer import collate

    meta = DatasetMeta(root)
    chosen = [e.episode_index for e in meta.episodes[:episodes]]
    if not chosen:
        raise UsageError(f"dataset {root} holds no episodes")
    data = LeRobotWindowDataset(root, {}, episodes=chosen, image_format="uint8")
    preds, targets = [], []
    for b in range(0, len(data), batch_size):
        batch = collate([data[r] for r in range(b, min(b + batch_size, len(data)))])
        targets.append(batch.pop(ACTION).numpy())  # (B, D)
        preds.append(policy.predict_chunk(batch)[:, 0].cpu().numpy())  # (B, D) robot units
    pred, target = np.concatenate(preds), np.concatenate(targets)  # (N, D)
    first = first_frames(data, len(chosen))
    return {
        "dataset": str(root),
        "episodes": len(chosen),
        "frames": len(target),
        "first_frames": dim_errors(pred[first], target[first]),
        "all_frames": dim_errors(pred, target),
    }


def evaluate_actions(
    checkpoint: Path,
    datasets: Sequence[Path],
    episodes: int,
    out_dir: Path | None = None,
    batch_size: int = 32,
    device: str | None = None,
) -> dict[str, Any]:
    """Score the checkpoint's actions on each dataset (one task each; :func:`score_actions`),
    written to ``out_dir/action_error.json``::

        {"checkpoint": str, "action_names": [str] | None, "sign_min": float, "seconds": float,
         "tasks": [{"task": <dataset directory name>, "dataset": str, "episodes": int,
                    "frames": int, "first_frames": {"mean_abs_error": [D], "spread": [D],
                    "sign_agreement": [D]}, "all_frames": {...}}]}

    Raises:
        UsageError: ``episodes`` or ``batch_size`` < 1, no datasets, a directory that is not
            a dataset, or an ONNX export.
    """
    from embodied_mm.data.reader import DatasetMeta
    from embodied_mm.export.manifest import MANIFEST_FILE
    from embodied_mm.runtime.inference import load_policy

    if episodes < 1 or batch_size < 1:
        raise UsageError(f"--episodes and --batch-size must be >= 1, got {episodes}, {batch_size}")
    if (Path(checkpoint) / MANIFEST_FILE).is_file():
        raise UsageError(f"{checkpoint} is an ONNX export: eval-actions needs the PyTorch one")
    if not datasets:
        raise UsageError("give at least one --dataset DIR (comma-separated for several)")
    metas = [DatasetMeta(Path(root)) for root in datasets]  # before the policy loads
    policy = load_policy(checkpoint, device=device)
    t0 = time.perf_counter()
    tasks = [
        {"task": Path(root).name, **score_actions(policy, Path(root), episodes, batch_size)}
        for root in datasets
    ]
    info = {
        "checkpoint": str(checkpoint),
        "action_names": metas[0].features[ACTION].get("names"),
        "sign_min": SIGN_MIN,
        "seconds": time.perf_counter() - t0,
        "tasks": tasks,
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "action_error.json").write_text(json.dumps(info, indent=2))
    return info


def action_table(info: dict[str, Any]) -> str:
    """A line per task, frame set and action dim: error against spread, sign agreement."""
    names = info.get("action_names") or []
    lines = []
    for t in info["tasks"]:
        for which in ("first_frames", "all_frames"):
            r = t[which]
            for d, (err, spread, agree) in enumerate(
                zip(r["mean_abs_error"], r["spread"], r["sign_agreement"], strict=True)
            ):
                name = names[d] if d < len(names) else f"dim {d}"
                sign = "n/a" if agree is None else f"{agree:.0%}"
                lines.append(f"{t['task']:20s} {which:12s} {name:10s} error {err:.3f}  "
                             f"spread {spread:.3f}  same sign {sign}")  # fmt: skip
    return "\n".join(lines)
