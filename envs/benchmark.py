"""Speed of the envs (steps/s, time split) and success of the scripted experts.

Used by ``embodied-mm bench envs`` and ``embodied-mm bench experts``; each function returns
plain dicts so the CLI prints them and docs/benchmarks.md records them.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

from embodied_mm.envs.expert import make_expert
from embodied_mm.envs.tabletop_env import TabletopEnv


def bench_single(engine: str, task: str, steps: int, image_size: int = 128) -> dict[str, Any]:
    """Control steps/s of one env driven by its expert, and ms per step in physics, IK and
    rendering (both cameras). Episodes restart when they end; reset time is excluded."""
    env = TabletopEnv(task, engine=engine, image_size=image_size)
    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    for key in ("physics", "ik", "render"):
        env.timing[key] = 0.0  # drop the first reset's lazy renderer set-up
    env.timing["steps"] = 0
    elapsed, seed = 0.0, 0
    for _ in range(steps):
        action, _ = expert.act(obs)
        t0 = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(action)
        elapsed += time.perf_counter() - t0
        if terminated or truncated:
            seed += 1
            obs, _ = env.reset(seed=seed)
    n = env.timing["steps"]
    renders = n + seed  # every step and every reset after the first renders both cameras
    # CPU time of rendering (all threads): unlike wall time, it does not grow when other
    # processes compete for the cores, so it is comparable across busy and idle machines.
    cpu0 = time.process_time()
    for _ in range(100):
        for cam in env.cameras:
            env.engine.render(cam.name)
    render_cpu_ms = 1e3 * (time.process_time() - cpu0) / 100
    video = bench_presentation(env)
    env.close()
    return {
        "engine": engine,
        "steps_per_s": n / elapsed,
        "step_ms": 1e3 * elapsed / n,
        "physics_ms": 1e3 * env.timing["physics"] / n,
        "ik_ms": 1e3 * env.timing["ik"] / n,
        "render_ms": 1e3 * env.timing["render"] / renders,
        "render_cpu_ms": render_cpu_ms,
        **video,
    }


def bench_presentation(env: TabletopEnv, frames: int = 60) -> dict[str, float]:
    """What a video for people adds per control step (only while one is written): the
    480×360 presentation render, its instruction/plan banner and the H.264 encode, ms wall
    and ms CPU (all threads) per frame."""
    import tempfile
    from pathlib import Path

    from embodied_mm.data.video import VideoWriter
    from embodied_mm.envs.presentation import draw_banner

    env.render_presentation()  # the renderer of that size is set up on first use
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        writer = VideoWriter(Path(tmp) / "bench.mp4", fps=20)
        parts = {"presentation_render": 0.0, "presentation_banner": 0.0, "presentation_encode": 0.0}
        cpu0 = time.process_time()
        for _ in range(frames):
            t0 = time.perf_counter()
            view = env.render_presentation()
            t1 = time.perf_counter()
            img = draw_banner(view, env.task_instruction, "move above the red block")
            t2 = time.perf_counter()
            writer.add(img)
            t3 = time.perf_counter()
            parts["presentation_render"] += t1 - t0
            parts["presentation_banner"] += t2 - t1
            parts["presentation_encode"] += t3 - t2
        writer.close()
        cpu = time.process_time() - cpu0
    for key, total in parts.items():
        out[f"{key}_ms"] = 1e3 * total / frames
    out["presentation_cpu_ms"] = 1e3 * cpu / frames
    return out


def bench_async(
    engine: str, task: str, steps: int, num_envs: int = 2, image_size: int = 128
) -> dict[str, Any]:
    """Env steps/s (summed over envs) of ``gymnasium.make_vec(..., "async")`` with random
    actions; the sims and renderers live in the worker processes.

    Workers start by ``forkserver``: :func:`bench_single` has already opened an EGL context in
    this process, and a ``fork``ed child of such a process hangs in its own EGL set-up.
    """
    import embodied_mm.envs  # noqa: F401  (registers the ids)
    from embodied_mm.envs.registration import gym_id

    envs = gym.make_vec(
        gym_id(task),
        num_envs=num_envs,
        vectorization_mode="async",
        vector_kwargs={"context": "forkserver"},
        engine=engine,
        image_size=image_size,
    )
    try:
        envs.reset(seed=0)
        envs.action_space.seed(0)
        actions = [envs.action_space.sample() for _ in range(steps)]
        t0 = time.perf_counter()
        for a in actions:
            envs.step(a)
        elapsed = time.perf_counter() - t0
    finally:
        envs.close()
    return {"engine": engine, "num_envs": num_envs, "steps_per_s": steps * num_envs / elapsed}


def expert_success(
    task: str, engine: str, seeds: range, action_mode: str = "ee_delta"
) -> dict[str, Any]:
    """Success rate of the task's scripted expert over ``seeds`` (small images: speed)."""
    env = TabletopEnv(task, engine=engine, image_size=32, action_mode=action_mode)  # type: ignore[arg-type]
    expert = make_expert(env)
    successes, steps, failed = 0, [], []
    t0 = time.perf_counter()
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs)[0])
            done = terminated or truncated
        successes += bool(info["is_success"])
        steps.append(env.elapsed_steps)
        if not info["is_success"]:
            failed.append(seed)
    env.close()
    return {
        "task": task,
        "engine": engine,
        "episodes": len(seeds),
        "success_rate": successes / len(seeds),
        "mean_steps": float(np.mean(steps)),
        "failed_seeds": failed,
        "seconds": time.perf_counter() - t0,
    }
