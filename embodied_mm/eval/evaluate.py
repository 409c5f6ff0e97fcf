"""``embodied-mm eval``: success rates per task with 95% Wilson intervals, videos and
``eval_info.json``; episodes sharded across processes under ``accelerate launch``.

Episodes run through the controller stack a robot runs (chunk executor of ``--mode`` + safety
filter, :mod:`embodied_mm.runtime.controller`); the summaries count the filter's
interventions by kind, per episode, per task and overall."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodied_mm.errors import UsageError
from embodied_mm.eval.clips import ClipBudget
from embodied_mm.eval.progress import EvalProgress
from embodied_mm.eval.smoothness import task_smoothness
from embodied_mm.eval.stats import wilson_interval
from embodied_mm.eval.vector_rollout import rollout_batch
from embodied_mm.runtime.controller import ControlSpec

# Held-out evaluation seeds start far above the seeds demos are recorded with (0, 1, ...).
HELDOUT_SEED_BASE = 100_000


@dataclass
class TaskResult:
    env_id: str
    engine: str
    split: str
    episodes: int
    successes: int
    success_rate: float
    ci95: tuple[float, float]
    mean_length: float
    interventions: dict[str, int] = field(default_factory=dict)  # safety filter, by kind
    video: str | None = None
    per_episode: list[dict[str, Any]] = field(default_factory=list)
    # the episodes' smoothness figures summed up (eval/smoothness.py: task_smoothness)
    smoothness: dict[str, Any] = field(default_factory=dict)


def summarize_task(
    env_id: str, engine: str, split: str, records: list[dict[str, Any]], video: str | None
) -> TaskResult:
    records = sorted(records, key=lambda r: r["seed"])
    n, s = len(records), sum(r["success"] for r in records)
    return TaskResult(
        env_id=env_id, engine=engine, split=split, episodes=n, successes=s,
        success_rate=s / n, ci95=wilson_interval(s, n),
        mean_length=float(np.mean([r["steps"] for r in records])),
        interventions=total_interventions(records), video=video, per_episode=records,
        smoothness=task_smoothness(records),
    )  # fmt: skip


def total_interventions(records: list[dict[str, Any]]) -> dict[str, int]:
    """The safety filter's interventions by kind, summed over records that have counts."""
    total: Counter[str] = Counter()
    for r in records:
        total.update(r.get("interventions", {}))
    return dict(sorted(total.items()))


def as_batch_policy(policy: Any) -> Any:
    """``policy`` as something with ``infer_batch`` (a ``VLAPolicy`` or ``OrtPolicy`` is
    wrapped in ``LocalPolicy``, the in-process chunk source ``deploy`` uses)."""
    if hasattr(policy, "infer_batch"):
        return policy
    from embodied_mm.runtime.inference import LocalPolicy

    return LocalPolicy(policy)


def evaluate_policy(
    policy: Any,
    env_ids: list[str],
    engine: str,
    episodes: int,
    split: str = "train",
    seed: int = HELDOUT_SEED_BASE,
    num_envs: int = 2,
    video_dir: Path | None = None,
    rank: int = 0,
    world_size: int = 1,
    control: ControlSpec | None = None,
    keep_actions: bool = False,
    on_episode: Callable[[str, dict[str, Any]], None] | None = None,
    perturb: Mapping[str, int] | None = None,
    video_camera: str = "presentation",
    clip_failures: int = 0,
    instruction: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """This rank's share of the episodes (global episode ``i`` runs on rank ``i % world``):
    env id → per-episode records. Rank 0 writes one video per task. ``policy``: a
    ``LocalPolicy``, or a policy object it wraps; ``control``: the mode (default open loop);
    ``keep_actions``: records also hold the commands sent (``actions``, (T, D));
    ``on_episode(env_id, record)``: called as each episode ends (e.g. :class:`EvalProgress`);
    ``perturb``: ``{factor: level}`` of :mod:`embodied_mm.envs.perturbations` (every env).
    Videos come from ``video_camera`` (``presentation`` or ``policy``); with
    ``clip_failures`` > 0 each rank also keeps per-episode clips of its first
    ``clip_failures`` failures and first success per task (``video_dir/clips/<task>/``).
    ``instruction``: the user's text in place of every episode's sampled one.
    """
    policy = as_batch_policy(policy)
    control = control or ControlSpec()
    k = control.n_action_steps
    if k is not None and not 1 <= k <= policy.chunk_size:
        raise UsageError(f"n_action_steps={k} must be in [1, {policy.chunk_size}]")
    out: dict[str, list[dict[str, Any]]] = {}
    for env_id in env_ids:
        seeds = [seed + i for i in range(episodes) if i % world_size == rank]
        records: list[dict[str, Any]] = []
        done = None if on_episode is None else (lambda r, e=env_id: on_episode(e, r))
        budget = None
        if video_dir is not None and clip_failures > 0:
            budget = ClipBudget(video_dir / "clips" / env_id.replace("/", "_"), clip_failures)
        for b in range(0, len(seeds), num_envs):
            video = None
            if video_dir is not None and rank == 0 and b == 0:
                video = video_dir / f"{env_id.replace('/', '_')}_{engine}.mp4"
            records += rollout_batch(policy, env_id, seeds[b : b + num_envs], engine, split,
                                     control, video_path=video, keep_actions=keep_actions,
                                     on_episode=done, perturb=perturb,
                                     video_camera=video_camera, clips=budget,
                                     instruction=instruction)  # fmt: skip
        out[env_id] = records
    return out


def run_eval(
    checkpoint: Path,
    env_ids: list[str],
    engine: str,
    episodes: int,
    out_dir: Path,
    split: str = "train",
    seed: int = HELDOUT_SEED_BASE,
    num_envs: int = 2,
    control: ControlSpec | None = None,
    progress_bar: bool | None = None,
    perturb: Mapping[str, int] | None = None,
    loaded_policy: Any = None,
    videos: bool = True,
    video_camera: str = "presentation",
    clip_failures: int = 0,
    with_plan: bool | None = False,
    instruction: str | None = None,
) -> dict[str, Any] | None:
    """Evaluate a checkpoint (``save_pretrained`` or ``export`` directory) under ``control``
    (default: open loop at 20 Hz); on the main process, write and return ``eval_info.json``.

    The main process reports its progress on stderr (:class:`EvalProgress`): a bar when
    ``progress_bar`` (default: stderr is a terminal), else a plain line per tenth done.
    ``perturb``: ``{factor: level}`` of :mod:`embodied_mm.envs.perturbations`, recorded in
    ``eval_info.json``; ``loaded_policy``: the checkpoint's ``LocalPolicy`` if already loaded
    (a suite of evaluations loads it once); ``videos``: write one video per task (from
    ``video_camera``) and, with ``clip_failures`` > 0, per-episode clips of the first
    failures and success (their paths, relative to ``out_dir``, in ``per_episode[].video``);
    ``with_plan``: the policy also writes its plan text each chunk (``per_episode[].plans``
    and ``plan_log``; None: when the checkpoint was trained with plan labels);
    ``instruction``: the user's text in place of every episode's sampled one (``instruction``
    in ``eval_info.json``; each episode's ``task`` and ``instruction_source``)."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    import embodied_mm.envs  # noqa: F401  (registers the ids)
    from embodied_mm.envs.perturbations import make_perturbation
    from embodied_mm.envs.registration import check_env_id
    from embodied_mm.eval.clips import check_video_camera
    from embodied_mm.runtime.inference import LocalPolicy
    from embodied_mm.runtime.instruction import check_instruction

    instruction = check_instruction(instruction)
    if not env_ids:
        raise UsageError("give at least one --env ID (see `embodied-mm envs`)")
    for env_id in env_ids:  # before the policy loads
        check_env_id(env_id)
    for name, value in (("--episodes", episodes), ("--num-envs", num_envs)):
        if value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")
    from embodied_mm.envs.tasks.base import SPLITS

    if split not in SPLITS:
        raise UsageError(f"unknown --split {split!r}; known: {', '.join(SPLITS)}")
    perturbation = make_perturbation(perturb)  # UsageError for unknown names, before loading
    check_video_camera(video_camera)
    control = control or ControlSpec()
    state = PartialState(cpu=True)
    policy = loaded_policy or LocalPolicy.from_checkpoint(checkpoint, with_plan=with_plan)
    t0 = time.perf_counter()
    # the main process shows its own share of the episodes (all of them in one process)
    mine_total = len(env_ids) * len(range(state.process_index, episodes, state.num_processes))
    progress = None
    if state.is_main_process:
        progress = EvalProgress(mine_total, interactive=progress_bar)
    try:
        mine = evaluate_policy(policy, env_ids, engine, episodes, split, seed, num_envs,
                               out_dir / "videos" if videos else None, state.process_index,
                               state.num_processes, control,
                               on_episode=progress.episode_done if progress else None,
                               perturb=perturbation.levels, video_camera=video_camera,
                               clip_failures=clip_failures, instruction=instruction)  # fmt: skip
    finally:
        if progress is not None:
            progress.close()
    gathered = gather_object([mine]) if state.num_processes > 1 else [mine]
    if not state.is_main_process:
        return None
    tasks = []
    for env_id in env_ids:
        records = [r for part in gathered for r in part[env_id]]
        for r in records:  # clips relative to the run directory (the report links them so)
            if r.get("video"):
                r["video"] = os.path.relpath(r["video"], out_dir)
        video = out_dir / "videos" / f"{env_id.replace('/', '_')}_{engine}.mp4"
        tasks.append(summarize_task(env_id, engine, split, records,
                                    str(video) if video.exists() else None))  # fmt: skip
    info = {
        "checkpoint": str(checkpoint),
        "engine": engine,
        "split": split,
        "seed": seed,
        "num_processes": state.num_processes,
        "control": control.as_dict(),
        "n_action_steps": control.n_action_steps,
        "perturb": perturbation.describe(),
        "instruction": instruction,  # the user's, every episode (None: each env's own)
        "plans": bool(getattr(policy, "with_plan", False)),  # asked for with every chunk
        "seconds": time.perf_counter() - t0,
        "tasks": [asdict(t) for t in tasks],
        "overall": {
            "episodes": sum(t.episodes for t in tasks),
            "success_rate": float(np.mean([t.success_rate for t in tasks])),
            "interventions": total_interventions(
                [{"interventions": t.interventions} for t in tasks]
            ),
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval_info.json").write_text(json.dumps(info, indent=2))
    return info


def task_table(info: dict[str, Any]) -> str:
    """The per-task table of an ``eval_info.json`` (what ``eval`` prints at the end): one
    row per task (success rate, 95% Wilson interval, successes/episodes, mean length,
    interventions), then the overall row (the mean of the tasks' rates, all episodes)."""
    head = ("task", "success", "95% CI", "successes", "mean length", "interventions")
    rows = []
    for t in info["tasks"]:
        lo, hi = t["ci95"]
        n = sum(t["interventions"].values()) if t.get("interventions") else 0
        rows.append((t["env_id"], f"{t['success_rate']:.0%}", f"{lo:.0%}-{hi:.0%}",
                     f"{t['successes']}/{t['episodes']}", f"{t['mean_length']:.1f}",
                     str(n) if n else "none"))  # fmt: skip
    overall = info["overall"]
    n = sum(overall["interventions"].values())
    successes = sum(t["successes"] for t in info["tasks"])
    rows.append((f"overall ({len(info['tasks'])} tasks)", f"{overall['success_rate']:.0%}", "",
                 f"{successes}/{overall['episodes']}", "", str(n) if n else "none"))  # fmt: skip
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in (head, *rows)]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


TASK_FIELDS = ("env_id", "engine", "split", "success_rate", "ci95")


def read_eval_info(path: Path) -> dict[str, Any]:
    """An ``eval_info.json`` as :func:`evaluate` writes it, read for :func:`compare_evals`.

    Raises:
        UsageError: one line naming the file and what is wrong (unreadable, not JSON, no
            ``tasks`` list, a task without one of :data:`TASK_FIELDS`).
    """
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        what = "empty" if not err.doc.strip() else f"not valid JSON ({err})"
        raise UsageError(f"{path}: {what}; expected an eval_info.json that eval wrote") from None
    tasks = info.get("tasks") if isinstance(info, dict) else None
    if not isinstance(tasks, list):
        raise UsageError(f"{path}: no 'tasks' list; expected an eval_info.json that eval wrote")
    for i, task in enumerate(tasks):
        missing = [k for k in TASK_FIELDS if not isinstance(task, dict) or k not in task]
        if missing:
            raise UsageError(f"{path}: tasks[{i}] lacks {', '.join(missing)}")
    return info


def compare_evals(baseline: dict[str, Any], candidate: dict[str, Any], max_drop: float = 0.1):
    """Per task: rates of both, and ``regression`` when the candidate's rate is lower by more
    than ``max_drop`` AND its 95% interval lies wholly below the baseline's rate."""
    base = {(t["env_id"], t["engine"], t["split"]): t for t in baseline["tasks"]}
    rows = []
    for t in candidate["tasks"]:
        key = (t["env_id"], t["engine"], t["split"])
        if key not in base:
            rows.append({"task": key, "baseline": None, "candidate": t["success_rate"],
                         "regression": False})  # fmt: skip
            continue
        b = base[key]
        regression = is_regression(b["success_rate"], t["success_rate"], t["ci95"], max_drop)
        rows.append({"task": key, "baseline": b["success_rate"], "candidate": t["success_rate"],
                     "regression": regression})  # fmt: skip
    return rows


def is_regression(
    baseline_rate: float, candidate_rate: float, candidate_ci95: Any, max_drop: float = 0.1
) -> bool:
    """The candidate's rate is lower by more than ``max_drop`` AND its 95% interval lies
    wholly below the baseline's rate."""
    drop = baseline_rate - candidate_rate
    return bool(drop > max_drop and candidate_ci95[1] < baseline_rate)
