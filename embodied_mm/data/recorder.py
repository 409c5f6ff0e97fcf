"""Recording scripted-expert demonstrations into a LeRobot v3.0 dataset.

A :class:`DemoSource` turns a seed into one :class:`Episode` (it owns an env and its expert).
``record`` asks sources for episodes seed by seed, keeps the successful ones (all, with
``keep_failures``), and commits them through :class:`DatasetWriter` **in seed order**, so a
dataset does not depend on how many workers recorded it.

With ``workers > 1`` every worker process builds its own source (env, renderer, EGL context)
after it starts: the pool uses the "spawn" start method, because an EGL context or a
simulator created before a fork does not survive in the child. Workers also encode the
videos, so the parent only renames files and rewrites metadata.

The recorder holds the dataset's exclusive lock (:mod:`embodied_mm.dirlock`) from before it
looks at ``out`` until it returns, so a second ``record`` on the same directory fails at once
instead of interleaving commits (or wiping the first one's staging area).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from embodied_mm.data import lerobot_format as fmt
from embodied_mm.data.episode import Episode, EpisodeBuffer
from embodied_mm.data.video import DEFAULT_CODEC, check_codec
from embodied_mm.data.writer import (
    STAGING_DIR,
    DatasetWriter,
    StagedEpisode,
    refuse_to_overwrite,
    stage_episode,
)
from embodied_mm.dirlock import exclusive_lock
from embodied_mm.features import ACTION, OBS_STATE, camera_of, env_obs_to_frame

# Give up when this many attempts in a row produced nothing to keep (a broken expert).
MAX_CONSECUTIVE_FAILURES = 50


class DemoSource(Protocol):
    """Produces demonstrations; built inside the process that uses it.

    Sources may also set ``state_names`` / ``action_names`` (lists of str) for info.json.
    """

    fps: int
    robot_type: str

    def episode(self, seed: int) -> Episode:
        """Run one episode from ``reset(seed)``; ``Episode.success`` says how it ended."""

    def close(self) -> None: ...


SourceFactory = Callable[[], DemoSource]


def control_fps(env: Any, env_id: str) -> int:
    """The env's control rate as whole frames per second (what the dataset records at)."""
    hz = getattr(env.unwrapped, "control_hz", None) or env.metadata.get("render_fps")
    if not hz:
        raise ValueError(f"{env_id}: the env declares no control rate (control_hz/render_fps)")
    fps = round(hz)
    if abs(fps - hz) > 1e-9:
        raise ValueError(f"{env_id}: control rate {hz} Hz is not a whole number of fps")
    return fps


class GymExpertSource:
    """One of our Gymnasium envs driven by its task's scripted expert."""

    def __init__(self, env_id: str, engine: str, env_kwargs: dict[str, Any] | None = None):
        import gymnasium as gym

        import embodied_mm.envs  # noqa: F401  (registers the env ids)

        self.env = gym.make(env_id, engine=engine, **(env_kwargs or {}))
        base = self.env.unwrapped
        self.fps = control_fps(self.env, env_id)
        self.robot_type = str(getattr(base, "robot_type", "panda"))
        from embodied_mm.envs import tabletop_env

        # Per-dimension names for info.json, as LeRobot datasets carry them.
        fields = getattr(tabletop_env, "ACTION_FIELDS", {}).get(getattr(base, "action_mode", ""))
        self.action_names = list(fields) if fields else None
        self.state_names = getattr(base, "state_names", None)
        from embodied_mm.envs.expert import make_expert

        self.expert = make_expert(self.env)  # follows the env across episodes

    def episode(self, seed: int) -> Episode:
        obs, info = self.env.reset(seed=seed)
        task = str(info["task"])
        expert = self.expert
        buffer = EpisodeBuffer()
        while True:
            action, plan = expert.act(obs)
            buffer.add(env_obs_to_frame(obs, task), action, plan)
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                break
        return buffer.finish(seed=seed, success=bool(info.get("is_success", False)))

    def close(self) -> None:
        self.env.close()


def gym_expert_source(env_id: str, engine: str, env_kwargs: dict | None = None) -> SourceFactory:
    """A picklable factory (workers are spawned, so they rebuild the source from this)."""
    return functools.partial(GymExpertSource, env_id, engine, env_kwargs)


@dataclass
class _Result:
    seed: int
    success: bool
    staged: StagedEpisode | None  # None when the episode is not kept
    fps: int
    robot_type: str
    shapes: dict[str, tuple[int, ...]]
    names: dict[str, list[str] | None]
    extras: tuple[str, ...] = ()  # Episode.extras keys (``intervention``)


# --- worker side -------------------------------------------------------------------------------
_source: DemoSource | None = None
_staging: Path | None = None
_codec: str = DEFAULT_CODEC


def _init_worker(
    factory: SourceFactory, staging: Path, codec: str, parent_pid: int | None = None
) -> None:
    global _source, _staging, _codec
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    _source, _staging, _codec = factory(), staging, codec


def _exit_with_parent(parent_pid: int) -> None:
    """Exit when the recorder dies: a SIGKILLed parent would otherwise leave its pool's
    workers running forever (each holding a simulator and a GL context)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _run_one(seed: int, keep_failures: bool) -> _Result:
    assert _source is not None and _staging is not None, "worker not initialised"
    ep = _source.episode(seed)
    shapes = {OBS_STATE: ep.state.shape[1:], ACTION: ep.action.shape[1:]}
    shapes.update({k: v.shape[1:3] for k, v in ep.images.items()})
    keep = ep.success or keep_failures
    staged = stage_episode(ep, _staging, _source.fps, _codec) if keep else None
    names = {
        OBS_STATE: getattr(_source, "state_names", None),
        ACTION: getattr(_source, "action_names", None),
    }
    return _Result(
        seed, ep.success, staged, _source.fps, _source.robot_type, shapes, names, tuple(ep.extras)
    )


# --- parent side -------------------------------------------------------------------------------
@dataclass
class RecordSummary:
    root: Path
    episodes: int  # in the dataset now
    recorded: int  # committed by this call
    attempts: int
    failures: int


def record(
    factory: SourceFactory,
    out: Path,
    episodes: int,
    *,
    workers: int = 1,
    resume: bool = False,
    keep_failures: bool = False,
    seed: int = 0,
    codec: str = DEFAULT_CODEC,
    progress: bool = True,
    on_commit: Callable[[int], None] | None = None,
) -> RecordSummary:
    """Record until the dataset at ``out`` holds ``episodes`` episodes.

    ``resume`` continues a dataset (after a crash or to grow it) from the seed after the last
    committed one; one that already holds ``episodes`` is left as it is. Without ``resume``,
    ``out`` must not hold a dataset yet. Either way a directory with files but no
    ``meta/info.json`` is refused (FileExistsError naming it), never overwritten.

    Raises:
        DirectoryLockedError: another process is writing to ``out``.
    """
    from tqdm import tqdm

    if episodes < 1 or workers < 1:
        raise ValueError(f"episodes and workers must be >= 1, got {episodes}, {workers}")
    check_codec(codec)  # before any directory is made or worker started
    out = Path(out)
    with ExitStack() as held:
        held.enter_context(exclusive_lock(out, "dataset"))  # before anything reads or writes
        writer: DatasetWriter | None = None
        if (out / fmt.INFO_PATH).exists():
            if not resume:
                raise FileExistsError(
                    f"{out} already holds a dataset; pass --resume to continue it"
                )
            writer = held.enter_context(DatasetWriter.open_for_resume(out, lock=False))
        else:
            refuse_to_overwrite(out)  # files without metadata are not a fresh start
        start_seed = seed
        if writer is not None and writer.episode_rows:
            # Datasets not recorded by us have no seed column: start after the given seed.
            start_seed = max(max(int(r.get("seed", -1)) for r in writer.episode_rows) + 1, seed)
        have = writer.num_episodes if writer else 0
        summary = RecordSummary(out, have, 0, 0, 0)
        if have >= episodes:
            return summary  # already as large as asked: nothing to record
        staging = out / STAGING_DIR
        staging.mkdir(parents=True, exist_ok=True)
        # a bar on a terminal only (disable=None): piped stderr keeps errors on their own line
        bar = tqdm(
            total=episodes,
            initial=have,
            desc=f"record {out.name}",
            disable=None if progress else True,
        )
        consecutive_failures = 0
        results = _results(factory, staging, codec, workers, start_seed, keep_failures)
        try:
            for result in results:
                summary.attempts += 1
                if not result.success:
                    summary.failures += 1
                if result.staged is None:
                    consecutive_failures += 1
                    if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                        raise RuntimeError(
                            f"{consecutive_failures} episodes in a row failed (last seed "
                            f"{result.seed}); the expert is not solving this task"
                        )
                    continue
                consecutive_failures = 0
                if writer is None:
                    writer = DatasetWriter.create(
                        out,
                        _features(result, codec),
                        result.fps,
                        robot_type=result.robot_type,
                        lock=False,
                    )
                    held.enter_context(writer)
                index = writer.commit(result.staged)
                summary.recorded += 1
                summary.episodes = writer.num_episodes
                bar.update(1)
                bar.set_postfix(failures=summary.failures)
                if on_commit is not None:
                    on_commit(index)
                if writer.num_episodes >= episodes:
                    break
        finally:
            results.close()  # stops the workers before their staging files are removed
            bar.close()
            shutil.rmtree(staging, ignore_errors=True)
    return summary


def _features(result: _Result, codec: str) -> dict[str, dict[str, Any]]:
    cams = {
        camera_of(k): tuple(v)
        for k, v in result.shapes.items()
        if k.startswith("observation.images.")
    }
    return fmt.build_features(
        state_dim=int(result.shapes[OBS_STATE][0]),
        action_dim=int(result.shapes[ACTION][0]),
        cameras=cams,
        fps=result.fps,
        codec=codec,
        state_names=_names(result.names[OBS_STATE], result.shapes[OBS_STATE]),
        action_names=_names(result.names[ACTION], result.shapes[ACTION]),
        extras={k: fmt.EXTRA_FEATURES[k] for k in result.extras},
    )


def _names(names: list[str] | None, shape: tuple[int, ...]) -> list[str] | None:
    """Names only when they match the data (a source's names can go stale)."""
    return list(names) if names is not None and len(names) == int(shape[0]) else None


def _results(
    factory: SourceFactory,
    staging: Path,
    codec: str,
    workers: int,
    start_seed: int,
    keep_failures: bool,
) -> Iterator[_Result]:
    """Episode results for seeds start_seed, start_seed + 1, ... in seed order, forever."""
    if workers == 1:
        _init_worker(factory, staging, codec)
        try:
            s = start_seed
            while True:
                yield _run_one(s, keep_failures)
                s += 1
        finally:
            global _source
            if _source is not None:
                _source.close()
            _source = None
        return
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(factory, staging, codec, os.getpid()),
    ) as pool:
        pending: dict[int, Future] = {}
        next_submit, next_yield = start_seed, start_seed
        try:
            while True:
                # Two episodes in flight per worker keep every worker busy between commits.
                while len(pending) < 2 * workers:
                    pending[next_submit] = pool.submit(_run_one, next_submit, keep_failures)
                    next_submit += 1
                head = pending[next_yield]
                if not head.done():
                    wait(list(pending.values()), return_when=FIRST_COMPLETED)
                    continue
                del pending[next_yield]
                next_yield += 1
                yield head.result()
        finally:
            for fut in pending.values():
                fut.cancel()
