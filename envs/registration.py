"""Gymnasium ids, one per task: ``embodied_mm/<GymName>-v0`` (e.g. ``embodied_mm/PickLift-v0``).

Importing :mod:`embodied_mm.envs` registers them. Keyword arguments of
:class:`~embodied_mm.envs.tabletop_env.TabletopEnv` pass through ``gymnasium.make``, e.g.
``gymnasium.make("embodied_mm/PickLift-v0", engine="pybullet", action_mode="joint_pos")``.
"""

from __future__ import annotations

import gymnasium as gym

from embodied_mm.envs.tasks import TASKS
from embodied_mm.errors import UsageError

NAMESPACE = "embodied_mm"
VERSION = 0
ENTRY_POINT = "embodied_mm.envs.tabletop_env:TabletopEnv"


def gym_id(task_name: str) -> str:
    """The Gymnasium id of a registered task name (``"pick_lift"`` → ``embodied_mm/PickLift-v0``)."""
    return f"{NAMESPACE}/{TASKS.get(task_name).gym_name}-v{VERSION}"


def task_ids() -> dict[str, str]:
    """Gymnasium id → task name, for every registered task."""
    return {gym_id(name): name for name in TASKS.names()}


ALL = "all"  # --env all: every registered task


def expand_env_ids(spec: str) -> list[str]:
    """``--env``'s value as a list of ids: comma-separated ids (in the order given), or
    ``all``, every registered task in ``embodied-mm envs`` order.

    Raises:
        UsageError: ``all`` beside other ids, or an id given twice.
    """
    ids = [e.strip() for e in spec.split(",") if e.strip()]
    if ALL in ids:
        if len(ids) > 1:
            raise UsageError(f"--env {ALL} means every task; give it alone, got {spec!r}")
        return sorted(task_ids())
    twice = sorted({e for e in ids if ids.count(e) > 1})
    if twice:
        raise UsageError(f"--env names {', '.join(twice)} more than once")
    return ids


def check_env_id(env_id: str) -> None:
    """A :class:`~embodied_mm.errors.UsageError` naming the known ids when ``env_id`` is not a
    registered Gymnasium id (call :func:`register_envs` first)."""
    if env_id not in gym.registry:
        known = ", ".join(sorted(task_ids()))
        raise UsageError(f"unknown env {env_id!r}; known: {known}")


def register_envs() -> None:
    """Register every task once (safe to call again)."""
    for env_id, name in task_ids().items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=ENTRY_POINT,
            kwargs={"task": name},
            max_episode_steps=TASKS.get(name).max_steps,
            disable_env_checker=False,
        )
