"""Run episodes of an env with a policy: success rate, front-camera videos, a summary JSON.

A trained checkpoint runs through the controller stack ``deploy`` runs (the sim robot
adapter, the chunk executor of ``--mode`` and the safety filter, stepped by the controller
loop in simulated time: :func:`run_controlled`), so its success rate is the deployed
stack's; its records count the filter's interventions. The scripted expert and the seeded
random policy (anything with ``reset()`` and ``act(obs, info) -> action``) drive the env
directly (:func:`run_rollouts`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from embodied_mm.errors import UsageError


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


def make_rollout_policy(spec: str, env: gym.Env, seed: int = 0) -> RolloutPolicy:
    """``"scripted"`` or ``"random"`` (checkpoints run through :func:`run_controlled`)."""
    if spec == "scripted":
        return ExpertPolicy(env)
    if spec == "random":
        return RandomPolicy(env, seed)
    raise ValueError(
        f"--policy {spec!r} is neither 'scripted', 'random' nor a checkpoint directory"
    )


def is_checkpoint(spec: str) -> bool:
    return spec not in ("scripted", "random") and Path(spec).is_dir()


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
    interventions: dict[str, int] = field(default_factory=dict)  # safety filter, by kind
    per_episode: list[dict[str, Any]] = field(default_factory=list)
    instruction: str | None = None  # the user's --instruction (None: each env's own)
    with_plan: bool = False  # the policy was asked for its plan text with every chunk


def video_frame(
    env: gym.Env, obs: dict[str, Any], instruction: str, plan: str | None, camera: str
) -> np.ndarray:  # (H, W, 3) uint8
    """A video frame for people: the presentation camera (480×360) with the instruction and
    plan drawn on it, or (``camera="policy"``) the front camera the policy sees."""
    if camera == "policy":
        return obs["pixels"]["front"]
    from embodied_mm.envs.presentation import draw_banner

    return draw_banner(env.unwrapped.render_presentation(), instruction, plan)


def run_rollouts(
    env: gym.Env,
    policy: RolloutPolicy,
    episodes: int,
    seed: int = 0,
    video_dir: Path | None = None,
    fps: int = 20,
    video_camera: str = "presentation",
    viz: Any = None,
) -> list[dict[str, Any]]:
    """Run ``episodes`` episodes (seeds ``seed``, ``seed + 1``, ...) to success or time-out;
    write ``episode_<seed>.mp4`` when ``video_dir`` is given (``video_camera``: see
    :func:`video_frame`; frames are rendered only then). ``viz``
    (:class:`~embodied_mm.viz.rerun_log.RerunLog`) gets every step (the action sent is the
    policy's own: nothing filters it)."""
    from embodied_mm.features import env_obs_to_frame

    def play(episode_seed: int) -> tuple[dict[str, Any], list[np.ndarray]]:
        obs, info = env.reset(seed=episode_seed)
        policy.reset()
        grab = video_dir is not None
        frames = [video_frame(env, obs, info["task"], None, video_camera)] if grab else []
        steps, success, done = 0, False, False
        if viz is not None:
            viz.new_episode(episode_seed)
        while not done:
            action = policy.act(obs, info)
            if viz is not None:
                viz.log_step(steps, steps / fps, env_obs_to_frame(obs, info["task"]), action,
                             action, task=info["task"])  # fmt: skip
            obs, _, terminated, truncated, info = env.step(action)
            if grab:
                frames.append(video_frame(env, obs, info["task"], None, video_camera))
            steps += 1
            success = success or bool(info["is_success"])
            done = terminated or truncated
        return {"success": success, "steps": steps, "task": info["task"]}, frames

    return _run_episodes(play, episodes, seed, video_dir, fps)


def run_controlled(
    robot: Any,
    controller: Any,
    episodes: int,
    seed: int = 0,
    video_dir: Path | None = None,
    fps: int = 20,
    keep_actions: bool = False,
    video_camera: str = "presentation",
    viz: Any = None,
    instruction: str | None = None,
    on_step: Callable[[int, Any], None] | None = None,
) -> list[dict[str, Any]]:
    """:func:`run_rollouts` for a policy behind a controller: ``robot`` a connected
    ``SimRobot``, ``controller`` a :class:`~embodied_mm.runtime.controller.Controller` in
    simulated time. Each episode is one run of the controller loop, unpaced, until the env
    ends it or the safety filter stops it. ``instruction``: the user's, replacing the env's
    (:mod:`embodied_mm.runtime.instruction`); ``on_step(step, loop)``: after every step (a
    live status line). Records add ``interventions`` (by kind), ``stop_reason``, ``plans``
    (the plan texts, in order), ``plan_log`` (each with the step it began at),
    ``instruction_source`` (and ``env_task`` when replaced) and, with ``keep_actions``, the
    commands sent (``actions``, (T, D))."""
    camera = video_camera if video_dir is not None else None

    def play(episode_seed: int) -> tuple[dict[str, Any], list[np.ndarray]]:
        robot.reset_episode(seed=episode_seed)
        if viz is not None:
            viz.new_episode(episode_seed)
        record, frames = _controlled_episode(robot, controller, camera, viz, instruction,
                                             on_step)  # fmt: skip
        if not keep_actions:
            del record["actions"]
        return record, frames

    return _run_episodes(play, episodes, seed, video_dir, fps)


def _run_episodes(
    play: Callable[[int], tuple[dict[str, Any], list[np.ndarray]]],
    episodes: int,
    seed: int,
    video_dir: Path | None,
    fps: int,
) -> list[dict[str, Any]]:
    """``play(seed)`` for seeds ``seed ..``: each episode's record (with its seed, and the
    path of its front-camera video when ``video_dir`` is given)."""
    from embodied_mm.data.video import encode_video

    if episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {episodes}")
    if video_dir is not None:
        video_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for episode_seed in range(seed, seed + episodes):
        record, frames = play(episode_seed)
        record = {"seed": episode_seed, **record}
        if video_dir is not None and frames:
            path = video_dir / f"episode_{episode_seed:04d}.mp4"
            encode_video(np.stack(frames), path, fps=fps)  # (T, H, W, 3)
            record["video"] = str(path)
        results.append(record)
    return results


def _controlled_episode(
    robot: Any,
    controller: Any,
    camera: str | None = None,
    viz: Any = None,
    instruction: str | None = None,
    status: Callable[[int, Any], None] | None = None,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """One episode from the robot's present state: (its record, the video frames (H, W, 3)
    of ``camera`` (:func:`video_frame`; none for None): the first observation and one per
    step). ``instruction``: the user's, in place of the env's."""
    from embodied_mm.features import image_key
    from embodied_mm.runtime.instruction import Instruction
    from embodied_mm.runtime.loop import ControllerLoop

    controller.reset()
    told = Instruction.of(instruction, robot.task)

    def grab(plan: str | None) -> list[np.ndarray]:
        if camera is None:
            return []
        obs = {"pixels": {"front": robot.get_observation().frame[image_key("front")]}}
        return [video_frame(robot.env, obs, told.text, plan, camera)]

    frames = grab(None)
    sent: list[list[float]] = []
    success = False

    def on_step(step: int, loop: ControllerLoop) -> None:
        nonlocal success
        frames.extend(grab(loop.executor.plan))
        sent.append(np.asarray(loop.last_sent, dtype=np.float64).tolist())
        success = success or bool(robot.info.get("is_success"))
        if status is not None:
            status(step, loop)

    hz = 1.0 / controller.safety.dt
    loop = ControllerLoop(robot, controller.executor, controller.safety, hz, task=instruction,
                          on_step=on_step, paced=False, viz=viz)  # fmt: skip
    result = loop.run(max_steps=10**9)  # the env's time limit or a safety stop ends it
    if result.stop_reason == "error":
        raise RuntimeError(f"the episode failed: {result.error}")
    record = {"success": success, "steps": result.steps, **told.record(),
              "interventions": dict(sorted(result.interventions.items())),
              "stop_reason": result.stop_reason, "plans": list(result.plans),
              "plan_log": list(result.plan_log), "actions": sent}  # fmt: skip
    return record, frames


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
        interventions=_total_interventions(results),
        per_episode=results,
    )


def _total_interventions(results: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in results:
        for kind, n in r.get("interventions", {}).items():
            total[kind] = total.get(kind, 0) + n
    return dict(sorted(total.items()))


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
    control: Any = None,
    keep_actions: bool = False,
    video_camera: str = "presentation",
    viz: Any = None,
    perturb: dict[str, int] | None = None,
    instruction: str | None = None,
    with_plan: bool | None = None,
    on_step: Callable[[int, Any], None] | None = None,
) -> RolloutSummary:
    """Make the env, run the episodes, write the summary JSON (to ``summary_path``, or
    ``video_dir/summary.json``). ``control``: the
    :class:`~embodied_mm.runtime.controller.ControlSpec` a checkpoint runs under (default
    open loop at 20 Hz); scripted and random policies ignore it. ``keep_actions``: a
    checkpoint's records also hold the commands sent (``actions``, (T, D)).
    ``video_camera``: what the videos show (:func:`video_frame`); ``viz``: a
    :class:`~embodied_mm.viz.rerun_log.RerunLog` that gets every step. ``perturb``:
    ``{factor: level}`` of :mod:`embodied_mm.envs.perturbations`, applied by the env.
    A checkpoint's options: ``instruction``, the user's text in place of every episode's
    sampled one; ``with_plan``, ask for its plan text each chunk (None: when it was trained
    with plan labels); ``on_step(step, loop)``, after every control step."""
    import embodied_mm.envs  # noqa: F401  (registers the ids)
    from embodied_mm.envs.registration import check_env_id
    from embodied_mm.eval.clips import check_video_camera
    from embodied_mm.runtime.instruction import check_instruction

    check_env_id(env_id)
    check_video_camera(video_camera)
    instruction = check_instruction(instruction)
    if not is_checkpoint(policy) and (instruction is not None or with_plan):
        what = "--instruction" if instruction is not None else "--plan"
        raise UsageError(
            f"{what} is for a checkpoint policy: the {policy!r} policy reads neither "
            "instructions nor writes plans"
        )
    env_kwargs = {"perturb": dict(perturb)} if perturb else {}
    t0 = time.perf_counter()
    asked = False
    if is_checkpoint(policy):
        results, asked = _rollout_checkpoint(Path(policy), env_id, engine, episodes, video_dir,
                                             seed, image_size, action_mode, control,
                                             keep_actions, video_camera, viz, env_kwargs,
                                             instruction, with_plan, on_step)  # fmt: skip
    else:
        env = gym.make(env_id, engine=engine, image_size=image_size, action_mode=action_mode,
                       **env_kwargs)  # fmt: skip
        try:
            results = run_rollouts(env, make_rollout_policy(policy, env, seed), episodes, seed,
                                   video_dir, video_camera=video_camera, viz=viz)  # fmt: skip
        finally:
            env.close()
    summary = summarize(env_id, engine, policy, results, time.perf_counter() - t0)
    summary.instruction, summary.with_plan = instruction, asked
    out = summary_path or (video_dir / "summary.json" if video_dir is not None else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(asdict(summary), indent=2))
    return summary


def _rollout_checkpoint(
    checkpoint: Path,
    env_id: str,
    engine: str,
    episodes: int,
    video_dir: Path | None,
    seed: int,
    image_size: int,
    action_mode: str,
    control: Any,
    keep_actions: bool,
    video_camera: str = "presentation",
    viz: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    instruction: str | None = None,
    with_plan: bool | None = None,
    on_step: Callable[[int, Any], None] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """The episodes' records, and whether the policy was asked for plans."""
    from embodied_mm.runtime.adapters.sim import SimRobot
    from embodied_mm.runtime.controller import ControlSpec, robot_sim_controller
    from embodied_mm.runtime.inference import LocalPolicy

    source = LocalPolicy.from_checkpoint(checkpoint, with_plan=with_plan)
    with SimRobot(env_id, seed=seed, engine=engine, image_size=image_size,
                  action_mode=action_mode, **(env_kwargs or {})) as robot:  # fmt: skip
        controller = robot_sim_controller(control or ControlSpec(), source, robot)
        try:
            records = run_controlled(robot, controller, episodes, seed, video_dir,
                                     keep_actions=keep_actions, video_camera=video_camera,
                                     viz=viz, instruction=instruction, on_step=on_step)  # fmt: skip
            return records, source.with_plan
        finally:
            controller.close()
