"""Tabletop manipulation environments (Gymnasium) on MuJoCo and PyBullet.

Installed as ``embodied_mm.envs``. One task definition drives both engines through the
:class:`embodied_mm.envs.engine.Engine` interface. Importing this package registers the
Gymnasium ids (``embodied_mm/PickLift-v0``, ...; see :mod:`embodied_mm.envs.registration`).
"""

from embodied_mm.envs.registration import register_envs

register_envs()
