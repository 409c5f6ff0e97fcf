"""Run episodes of an env with a policy: success rate, front-camera videos, a summary JSON.

A policy here is anything with ``reset()`` and ``act(obs, info) -> action``;
:func:`make_rollout_policy` builds the scripted expert, a seeded random policy, or a trained
checkpoint (through the runtime's chunk executor, so a checkpoint runs exactly as it would
on a robot).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np


class RolloutPolicy(Protocol):
    def reset(self) -> None: ...

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray: ...


class ExpertPolicy:
    """The task's scripted expert."""

    def __init__(self, env: gym.Env) -> None:
        from embodied_mm.envs.expert import make_expert

        self.expert = make_expert(env)

    def reset(self) -> None:  # the expert notices new episodes itself
        pass

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        return self.expert.act(obs)[0]


class RandomPolicy:
    """Uniform samples from the action space, seeded for repeatable runs."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        self.space = env.action_space
        self.space.seed(seed)

    def reset(self) -> None:
        pass

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        return self.space.sample()


class CheckpointPolicy:
    """A saved VLA policy, run open loop chunk by chunk as the robot runtime runs it."""

    def __init__(self, checkpoint: Path, n_action_steps: int | None = None) -> None:
        from embodied_mm.runtime.chunking import OpenLoopExecutor
        from embodied_mm.runtime.inference import LocalPolicy

        self.executor = OpenLoopExecutor(LocalPolicy.from_checkpoint(checkpoint), n_action_steps)

    def reset(self) -> None:
        self.executor.reset()

    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        from embodied_mm.features import env_obs_to_frame

        action = self.executor.next_action(env_obs_to_frame(obs, info["task"]))
        if action is None:
            raise RuntimeError(f"the policy gave no action: {self.executor.last_error}")
        return action


def make_rollout_policy(spec: str, env: gym.Env, seed: int = 0) -> RolloutPolicy:
    """``"scripted"``, ``"random"`` or the path of a checkpoint directory."""
    if spec == "scripted":
        return ExpertPolicy(env)
    if spec == "random":
        return RandomPolicy(env, seed)
    path = Path(spec)
    if not path.is_dir():
        raise ValueError(
            f"--policy {spec!r} is neither 'scripted', 'random' nor a checkpoint directory"
        )
    try:
        import embodied_mm.model.modeling_vla  # noqa: F401
    except ImportError as err:  # pragma: no cover - the model package ships with the repo
        raise RuntimeError(
            f"checkpoint policies need embodied_mm.model.modeling_vla: {err}"
        ) from err
    return CheckpointPolicy(path)


@dataclass
class RolloutSummary:
    env_id: str
    engine: str
    policy: str
    episodes: int
    successes: int
    success_rate: float
    mean_steps: float
    seconds: float
    per_episode: list[dict[str, Any]] = field(default_factory=list)


def run_rollouts(
    env: gym.Env,
    policy: RolloutPolicy,
    episodes: int,
    seed: int = 0,
    video_dir: Path | None = None,
    fps: int = 20,
) -> list[dict[str, Any]]:
    """Run ``episodes`` episodes (seeds ``seed``, ``seed + 1``, ...) to success or time-out;
    write ``episode_<seed>.mp4`` of the front camera when ``video_dir`` is given."""
    from embodied_mm.data.video import encode_video

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if video_dir is not None:
        video_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(episodes):
        episode_seed = seed + i
        obs, info = env.reset(seed=episode_seed)
        policy.reset()
        frames = [obs["pixels"]["front"]]
        steps, success, done = 0, False, False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
            frames.append(obs["pixels"]["front"])
            steps += 1
            success = success or bool(info["is_success"])
            done = terminated or truncated
        record = {"seed": episode_seed, "success": success, "steps": steps, "task": info["task"]}
        if video_dir is not None:
            path = video_dir / f"episode_{episode_seed:04d}.mp4"
            encode_video(np.stack(frames), path, fps=fps)  # (T, H, W, 3)
            record["video"] = str(path)
        results.append(record)
    return results


def summarize(
    env_id: str, engine: str, policy: str, results: list[dict[str, Any]], seconds: float
) -> RolloutSummary:
    successes = sum(r["success"] for r in results)
    return RolloutSummary(
        env_id=env_id,
        engine=engine,
        policy=policy,
        episodes=len(results),
        successes=successes,
        success_rate=successes / len(results),
        mean_steps=float(np.mean([r["steps"] for r in results])),
        seconds=seconds,
        per_episode=results,
    )


def rollout(
    env_id: str,
    engine: str,
    policy: str,
    episodes: int,
    video_dir: Path | None,
    seed: int = 0,
    image_size: int = 128,
    summary_path: Path | None = None,
    action_mode: str = "ee_delta",
) -> RolloutSummary:
    """Make the env, run the episodes, write the summary JSON (to ``summary_path``, or
    ``video_dir/summary.json``)."""
    import embodied_mm.envs  # noqa: F401  (registers the ids)

    if env_id not in gym.registry:
        from embodied_mm.envs.registration import task_ids

        raise ValueError(f"unknown env {env_id!r}; known: {', '.join(sorted(task_ids()))}")
    env = gym.make(env_id, engine=engine, image_size=image_size, action_mode=action_mode)
    try:
        t0 = time.perf_counter()
        results = run_rollouts(
            env, make_rollout_policy(policy, env, seed), episodes, seed, video_dir
        )
        summary = summarize(env_id, engine, policy, results, time.perf_counter() - t0)
    finally:
        env.close()
    out = summary_path or (video_dir / "summary.json" if video_dir is not None else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(asdict(summary), indent=2))
    return summary
