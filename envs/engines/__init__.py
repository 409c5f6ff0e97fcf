"""Physics engines implementing :class:`embodied_mm.envs.engine.Engine`.

``ENGINES`` maps the ``engine=`` name of the envs to the class, imported on first use so that
choosing MuJoCo never imports PyBullet and vice versa.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embodied_mm.registry import Registry

if TYPE_CHECKING:
    from embodied_mm.envs.engine import Engine

ENGINES: Registry[type[Engine]] = Registry("engine")
ENGINES.register("mujoco", "embodied_mm.envs.engines.mujoco_engine:MujocoEngine")
ENGINES.register("pybullet", "embodied_mm.envs.engines.pybullet_engine:PyBulletEngine")


def engine_class(name: str) -> type[Engine]:
    """The engine class for ``name``; fails clearly for an unknown or unavailable engine."""
    try:
        return ENGINES.get(name)
    except (ModuleNotFoundError, AttributeError) as err:
        raise RuntimeError(f"the {name!r} engine is not available: {err}") from err
