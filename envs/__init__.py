"""Tabletop manipulation environments (Gymnasium) on MuJoCo and PyBullet.

Installed as ``embodied_mm.envs``. One task definition drives both engines through the
:class:`embodied_mm.envs.engine.Engine` interface.
"""
