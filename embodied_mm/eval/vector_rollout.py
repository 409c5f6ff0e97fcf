"""Vectorised evaluation rollouts: N envs in worker processes, one batched policy call per
chunk for all of them.

The envs step in lockstep; every ``n_action_steps`` steps the policy predicts a chunk for the
whole batch, and each env executes the first ``n_action_steps`` actions of its own chunk
(open loop, as the runtime's :class:`~embodied_mm.runtime.chunking.OpenLoopExecutor`).
An env whose episode ended is ignored until every env of the batch has ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from embodied_mm.features import OBS_STATE, TASK, image_key


def obs_batch(obs: dict[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    """Vector-env observation → a policy batch with LeRobot keys."""
    batch: dict[str, Any] = {
        image_key(cam): torch.from_numpy(np.ascontiguousarray(img))  # (N, H, W, 3) uint8
        for cam, img in obs["pixels"].items()
    }
    batch[OBS_STATE] = torch.from_numpy(np.asarray(obs["agent_pos"], dtype=np.float32))  # (N, S)
    batch[TASK] = list(tasks)
    return batch


def rollout_batch(
    policy: Any,
    env_id: str,
    seeds: Sequence[int],
    engine: str = "mujoco",
    split: str = "train",
    n_action_steps: int | None = None,
    image_size: int = 128,
    video_path: Path | None = None,
    fps: int = 20,
) -> list[dict[str, Any]]:
    """One episode per seed, all in parallel (an async vector env of ``len(seeds)`` envs).

    Returns one record per seed: ``{"seed", "success", "steps", "task"}``. With
    ``video_path``, the front camera of the first env is written there.
    """
    import embodied_mm.envs  # noqa: F401  (registers the ids)
    from embodied_mm.data.video import encode_video

    n = len(seeds)
    k = n_action_steps or policy.config.chunk_size
    if not 1 <= k <= policy.config.chunk_size:
        raise ValueError(f"n_action_steps={k} must be in [1, {policy.config.chunk_size}]")
    envs = gym.make_vec(
        env_id,
        num_envs=n,
        vectorization_mode="async" if n > 1 else "sync",
        engine=engine,
        image_size=image_size,
        instruction_split=split,
        # forkserver: a forked worker hangs in EGL set-up when this process rendered before
        vector_kwargs={"context": "forkserver"} if n > 1 else {},
    )
    try:
        low, high = envs.single_action_space.low, envs.single_action_space.high
        obs, info = envs.reset(seed=[int(s) for s in seeds])
        tasks = [str(t) for t in info["task"]]
        policy.reset()
        done = np.zeros(n, dtype=bool)
        success = np.zeros(n, dtype=bool)
        steps = np.zeros(n, dtype=np.int64)
        frames = [obs["pixels"]["front"][0]] if video_path is not None else None
        while not done.all():
            chunk = policy.predict_chunk(obs_batch(obs, tasks))  # (N, K, D): torch, or numpy (ORT)
            chunk = np.asarray(chunk.float().cpu() if torch.is_tensor(chunk) else chunk, np.float32)
            for t in range(k):
                actions = np.clip(chunk[:, t], low, high)
                obs, _, terminated, truncated, info = envs.step(actions)
                live = ~done
                steps[live] += 1
                success[live] |= np.asarray(info["is_success"], dtype=bool)[live]
                if frames is not None and not done[0]:
                    frames.append(obs["pixels"]["front"][0])
                done |= np.asarray(terminated) | np.asarray(truncated)
                if done.all():
                    break
    finally:
        envs.close()
    if frames is not None:
        video_path.parent.mkdir(parents=True, exist_ok=True)
        encode_video(np.stack(frames), video_path, fps=fps)  # (T, H, W, 3)
    return [
        {"seed": int(s), "success": bool(success[i]), "steps": int(steps[i]), "task": tasks[i]}
        for i, s in enumerate(seeds)
    ]
