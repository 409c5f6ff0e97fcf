"""Vectorised evaluation rollouts: N envs in worker processes, each behind its own controller.

Every env has a :class:`~embodied_mm.runtime.controller.Controller` (chunk executor + safety
filter, in simulated time) built exactly as ``rollout`` and ``deploy`` build theirs, and sees
the env through :class:`VectorSlot`, the sim robot adapter over that env's slice of the
vector env: its limits, its hold command and its workspace check are the adapter's own. The
envs step in lockstep; at each step the executors that want a chunk are answered by one
batched policy call (:class:`~embodied_mm.eval.batching.StepBatcher`). An env whose episode
ended (success, time limit, or a safety stop) is held until every env of the batch has ended.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from embodied_mm.eval.batching import BatchPolicy, StepBatcher
from embodied_mm.eval.clips import ClipBudget, ClipRecorder
from embodied_mm.eval.smoothness import EpisodeMotion, arm_action_dims
from embodied_mm.features import TASK
from embodied_mm.runtime.adapters.sim import SimRobot
from embodied_mm.runtime.controller import Controller, ControlSpec, robot_sim_controller
from embodied_mm.runtime.instruction import Instruction
from embodied_mm.runtime.plan_log import PlanLog


class _Spaces:
    """The parts of an env a :class:`SimRobot` reads, for an env living in a worker."""

    def __init__(self, envs: gym.vector.VectorEnv) -> None:
        self.action_space = envs.single_action_space
        self.observation_space = envs.single_observation_space
        self.action_mode = envs.get_attr("action_mode")[0]
        self.unwrapped = self


class VectorSlot(SimRobot):
    """One env of a vector env, seen as the sim robot adapter: observations come from the
    vector env's steps (:meth:`observe`), commands go out through :meth:`sent`."""

    def __init__(self, env_id: str, index: int, spaces: _Spaces) -> None:
        super().__init__(env_id, seed=None)
        self.name = f"sim:{env_id}[{index}]"
        self.env = spaces

    def connect(self) -> None:  # the vector env owns the simulator
        raise RuntimeError("a VectorSlot is fed by its vector env; it does not connect")

    def disconnect(self) -> None:
        self.env = None

    def observe(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        """This env's observation after a reset or step (un-batched, the env's own layout)."""
        self._set(obs, info)

    def sent(self, action: np.ndarray) -> None:
        """The command the vector env was stepped with (the gripper target a hold keeps)."""
        self._gripper_cmd = float(np.asarray(action)[-1])


def _slice(obs: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "pixels": {c: img[i] for c, img in obs["pixels"].items()},
        "agent_pos": obs["agent_pos"][i],
    }


def rollout_batch(
    policy: BatchPolicy,
    env_id: str,
    seeds: Sequence[int],
    engine: str = "mujoco",
    split: str = "train",
    control: ControlSpec | None = None,
    image_size: int = 128,
    video_path: Path | None = None,
    video_camera: str = "presentation",
    clips: ClipBudget | None = None,
    fps: int = 20,
    keep_actions: bool = False,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    perturb: Mapping[str, int] | None = None,
    instruction: str | None = None,
) -> list[dict[str, Any]]:
    """One episode per seed, all in parallel (an async vector env of ``len(seeds)`` envs).

    ``policy``: anything with ``infer_batch(frames)`` and ``reset()`` (``LocalPolicy``).
    Videos come from ``video_camera``: ``"presentation"`` (480×360, the instruction and the
    current plan drawn on) or ``"policy"`` (the front camera the policy sees); ``clips``: the
    task's budget of per-episode clips (:mod:`embodied_mm.eval.clips`), a kept clip's path
    in its record's ``video``. Records also hold ``ended_near`` (:func:`ended_near`: the
    object the policy went to, or ``None``), ``plans``, the plan texts the policy gave
    in order (empty for a policy not asked for plans), ``plan_log`` (the same, each with
    the step it began at: :mod:`embodied_mm.runtime.plan_log`), and ``smoothness``
    (:class:`~embodied_mm.eval.smoothness.EpisodeMotion`: chunk boundaries against
    within-chunk action changes, RMS jerk of the arm's joints).
    Returns one record per seed: ``{"seed", "success", "steps", "task", "interventions",
    "stop_reason"}`` (``interventions``: the safety filter's counts by kind; ``stop_reason``:
    ``episode_done``, or the filter's ``watchdog_stop`` / ``estop``), plus ``actions`` (the
    commands sent, (T, D) as lists) with ``keep_actions``. With ``video_path``, the video
    camera of the first env is written there. ``on_episode`` is called with each record as
    its episode ends (before the batch's last one has). ``perturb``: ``{factor: level}`` of
    :mod:`embodied_mm.envs.perturbations`, applied by every env. ``instruction``: the user's
    text, given to the policy (and drawn on the videos) in place of each env's sampled one;
    records then say so (``instruction_source``, ``env_task``: what the env sampled).
    """
    import embodied_mm.envs  # noqa: F401  (registers the ids)

    control = control or ControlSpec()
    n = len(seeds)
    envs = gym.make_vec(
        env_id,
        num_envs=n,
        vectorization_mode="async" if n > 1 else "sync",
        engine=engine,
        image_size=image_size,
        instruction_split=split,
        perturb=dict(perturb) if perturb else None,
        # forkserver: a forked worker hangs in EGL set-up when this process rendered before
        vector_kwargs={"context": "forkserver"} if n > 1 else {},
    )
    batcher = StepBatcher(policy, n)
    controllers: list[Controller] = []
    recorder: ClipRecorder | None = None
    try:
        spaces = _Spaces(envs)
        slots = [VectorSlot(env_id, i, spaces) for i in range(n)]
        controllers = [
            robot_sim_controller(control, batcher.source(i), s) for i, s in enumerate(slots)
        ]
        obs, info = envs.reset(seed=[int(s) for s in seeds])
        told = [Instruction.of(instruction, str(t)) for t in info["task"]]
        tasks = [t.text for t in told]
        # where each object stood at the start (for ended_near; read before any autoreset)
        starts = [
            {n: np.asarray(p[0]) for n, p in e.poses.items()} for e in envs.get_attr("episode")
        ]
        for i, (slot, ctl) in enumerate(zip(slots, controllers, strict=True)):
            slot.observe(_slice(obs, i), {"task": tasks[i], "is_success": False})
            ctl.reset()
        live = set(range(n))
        success = np.zeros(n, dtype=bool)
        steps = np.zeros(n, dtype=np.int64)
        stop = ["episode_done"] * n
        actions: list[list[list[float]]] = [[] for _ in range(n)]
        arm = arm_action_dims(envs.get_attr("action_mode")[0])
        motion = [EpisodeMotion(obs["agent_pos"][i], arm) for i in range(n)]  # state (S,)
        records: dict[int, dict[str, Any]] = {}  # env -> its record, once its episode ended
        plans = [PlanLog() for _ in range(n)]
        recorder = ClipRecorder(envs, seeds, tasks, video_camera, fps,
                                {0: video_path} if video_path is not None else None, clips)  # fmt: skip
        recorder.capture(obs, range(n), [None] * n)

        def control_step(i: int):
            frame = dict(slots[i].get_observation().frame)
            frame[TASK] = tasks[i]
            return controllers[i].step(frame, slots[i].hold_action())

        while live:
            decided = batcher.run_step({i: (lambda i=i: control_step(i)) for i in sorted(live)})
            command = np.stack([slot.hold_action() for slot in slots]).astype(np.float32)  # (N, D)
            for i, (raw, safe) in decided.items():
                command[i] = safe.action
                # a step with no fresh action (the filter holds) belongs to no chunk
                chunk = controllers[i].executor.chunk_step if raw is not None else None
                motion[i].sent(safe.action, chunk)
                if keep_actions:
                    actions[i].append(np.asarray(safe.action, dtype=np.float64).tolist())
            obs, _, terminated, truncated, info = envs.step(command)
            ended = np.asarray(terminated) | np.asarray(truncated)
            now = [controllers[i].executor.plan for i in range(n)]
            for i in decided:
                plans[i].note(int(steps[i]), now[i])
            if recorder.active:
                recorder.capture(obs, sorted(decided), now)
            for i in sorted(decided):
                steps[i] += 1
                success[i] |= bool(info["is_success"][i])
                slots[i].observe(_slice(obs, i), {"task": tasks[i], "is_success": success[i]})
                slots[i].sent(command[i])
                motion[i].reached(obs["agent_pos"][i])
                safe = decided[i][1]
                if safe.stop:
                    stop[i] = "estop" if controllers[i].safety.estop.engaged else "watchdog_stop"
                if safe.stop or ended[i]:
                    records[i] = _record(seeds[i], success[i], steps[i], tasks[i],
                                         controllers[i].interventions, stop[i],
                                         actions[i] if keep_actions else None)  # fmt: skip
                    records[i].update(told[i].record())
                    records[i]["plans"] = plans[i].texts
                    records[i]["plan_log"] = plans[i].entries
                    records[i]["ended_near"] = ended_near(starts[i], obs["agent_pos"][i])
                    records[i]["smoothness"] = motion[i].figures(1.0 / control.hz)
                    recorder.episode_ended(i, records[i])
                    live.discard(i)
                    if on_episode is not None:
                        on_episode(records[i])
        recorder.finish()  # which clips are kept: in seed order, not in the order they ended
    finally:
        if recorder is not None:
            recorder.close()  # only what an error left open
        for ctl in controllers:
            ctl.close()
        batcher.close()
        envs.close()
    return [records[i] for i in range(n)]


NEAR_XY = 0.05  # m: how close (in x, y) the TCP must end to an object to count as "at" it


def ended_near(start_xyz: dict[str, np.ndarray], state: np.ndarray) -> str | None:
    """The object whose starting (x, y) is nearest the TCP at the episode's end, if within
    :data:`NEAR_XY` (else ``None``): which object the policy went for (e.g. when the
    instruction names one that is not there). ``state``: the env's ``agent_pos`` (15,)."""
    from embodied_mm.runtime.adapters.sim import TCP_XYZ

    tcp = np.asarray(state, dtype=np.float64)[TCP_XYZ][:2]
    dist = {n: float(np.linalg.norm(p[:2] - tcp)) for n, p in start_xyz.items()}
    name = min(dist, key=dist.__getitem__, default=None)
    return name if name is not None and dist[name] <= NEAR_XY else None


def _record(
    seed: int,
    success: bool,
    steps: int,
    task: str,
    interventions: dict[str, int],
    stop_reason: str,
    actions: list[list[float]] | None,
) -> dict[str, Any]:
    """One episode's record (see :func:`rollout_batch`)."""
    record = {"seed": int(seed), "success": bool(success), "steps": int(steps), "task": task,
              "interventions": dict(sorted(Counter(interventions).items())),
              "stop_reason": stop_reason}  # fmt: skip
    if actions is not None:
        record["actions"] = actions
    return record
