"""Engine parametrisation for the env tests: PyBullet cases skip cleanly if its engine
module is missing."""

from __future__ import annotations

import importlib

import pytest


def _pybullet_param():
    try:
        importlib.import_module("embodied_mm.envs.engines.pybullet_engine")
    except ImportError as err:
        return pytest.param("pybullet", marks=pytest.mark.skip(reason=f"no PyBullet engine: {err}"))
    return "pybullet"


ENGINES = ["mujoco", _pybullet_param()]
