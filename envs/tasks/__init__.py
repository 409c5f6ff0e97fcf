"""The task registry: one task definition per module, looked up by short name.

``TASKS.get(name)`` returns the task class (imported on first use); an unknown name fails with
the list of known tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embodied_mm.registry import Registry

if TYPE_CHECKING:
    from embodied_mm.envs.tasks.base import Task

TASKS: Registry[type[Task]] = Registry("task")
TASKS.register("reach", "embodied_mm.envs.tasks.reach:ReachObject")
TASKS.register("push", "embodied_mm.envs.tasks.push:PushToZone")
TASKS.register("pick_lift", "embodied_mm.envs.tasks.pick_lift:PickLift")
TASKS.register("pick_place_bin", "embodied_mm.envs.tasks.pick_place_bin:PickPlaceBin")
TASKS.register("stack", "embodied_mm.envs.tasks.stack:StackCube")
TASKS.register("place_on_plate", "embodied_mm.envs.tasks.place_on_plate:PlaceOnPlate")
TASKS.register("sort_by_color", "embodied_mm.envs.tasks.sort_by_color:SortByColor")


def get_task(name: str) -> Task:
    """A fresh instance of the task registered as ``name``."""
    return TASKS.get(name)()
