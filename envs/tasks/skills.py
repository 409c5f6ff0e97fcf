"""Expert phases shared by several tasks: pick an object up, put it down somewhere."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from embodied_mm.envs.engine import Engine
from embodied_mm.envs.expert import CLOSED, OPEN, Phase
from embodied_mm.envs.tasks.layout import quat_yaw, wrap_quarter_turn

APPROACH_HEIGHT = 0.12  # m above the object's centre before descending
CARRY_HEIGHT = 0.18  # m, TCP height while carrying an object across the table
UP = np.array([0.0, 0.0, 1.0])


def cube_grasp_yaw(obj: str) -> Callable[[Engine], float]:
    """Gripper yaw that puts the jaws square to the faces of a cube (nearest quarter turn)."""
    return lambda engine: wrap_quarter_turn(quat_yaw(engine.object_pose(obj)[1]))


def pick_phases(
    obj: str,
    phrase: str,
    yaw: Callable[[Engine], float] | None,
    lift_to: float = CARRY_HEIGHT,
    first: int = 0,
) -> list[Phase]:
    """Approach from above, descend, close the jaws, lift straight up (4 phases).

    ``first`` is the index of the first of these phases in the task's list: if the object is
    not in the jaws once the hand is well above it, the expert starts over from there.
    """

    def above(e: Engine) -> np.ndarray:
        return e.object_pose(obj)[0] + APPROACH_HEIGHT * UP

    def at_object(e: Engine) -> np.ndarray:
        return e.object_pose(obj)[0]

    def straight_up(e: Engine) -> np.ndarray:
        tcp = e.ee_pose()[0]
        return np.array([tcp[0], tcp[1], lift_to])

    def dropped(e: Engine) -> bool:
        return e.ee_pose()[0][2] > e.object_pose(obj)[0][2] + 0.04 and not e.is_grasped(obj)

    return [
        Phase(f"move above the {phrase}", above, OPEN, yaw=yaw, tol=0.01, speed=0.035),
        Phase(f"lower to the {phrase}", at_object, OPEN, yaw=yaw, tol=0.005, speed=0.02),
        Phase(f"grasp the {phrase}", at_object, CLOSED, tol=0.02, hold=6, timeout=15),
        Phase(
            f"lift the {phrase}", straight_up, CLOSED, tol=0.01, retry_if=dropped, retry_to=first
        ),
    ]


def place_phases(
    obj: str,
    phrase: str,
    place_at: Callable[[Engine], np.ndarray],
    destination: str,
    yaw: Callable[[Engine], float] | None = None,
    carry_height: float = CARRY_HEIGHT,
    pick_first: int = 0,
) -> list[Phase]:
    """Carry the grasped object over ``place_at`` (where its centre should end up), lower it,
    open the jaws and move up (4 phases, after :func:`pick_phases`).

    If the object leaves the jaws on the way, start over from phase ``pick_first`` (the first
    phase of the pick).
    """

    def over(e: Engine) -> np.ndarray:
        p = place_at(e)
        return np.array([p[0], p[1], carry_height])

    def dropped(e: Engine) -> bool:
        return not e.is_grasped(obj)

    def retreat(e: Engine) -> np.ndarray:
        return place_at(e) + np.array([0.0, 0.0, 0.1])

    return [
        Phase(
            f"move the {phrase} above {destination}",
            over,
            CLOSED,
            yaw=yaw,
            tol=0.01,
            retry_if=dropped,
            retry_to=pick_first,
        ),
        Phase(
            f"lower the {phrase} onto {destination}",
            place_at,
            CLOSED,
            yaw=yaw,
            tol=0.006,
            speed=0.015,
            retry_if=dropped,
            retry_to=pick_first,
        ),
        Phase(f"release the {phrase}", place_at, OPEN, tol=0.03, hold=5, timeout=12),
        Phase("move the gripper up", retreat, OPEN, tol=0.01),
    ]
