"""Pick a named cube and drop it into a bin, among distractors."""

from __future__ import annotations

import numpy as np

from embodied_mm.envs.engine import Engine, ObjectSpec
from embodied_mm.envs.expert import Phase
from embodied_mm.envs.tasks import layout
from embodied_mm.envs.tasks.base import (
    CUBE_HALF,
    Episode,
    Instructions,
    Task,
    can,
    cube,
    distractors,
    resting_pose,
)
from embodied_mm.envs.tasks.skills import cube_grasp_yaw, pick_phases, place_phases

BIN_INNER = 0.065  # m, half the inside width
BIN_WALL = 0.005  # m, half the wall thickness
BIN_HEIGHT = 0.06  # m, wall top above the table
BIN_RGBA = (0.35, 0.35, 0.4, 1.0)
# Bin parts: (name, half-extents, centre offset from the bin's centre on the table).
_OUT = BIN_INNER + BIN_WALL
BIN_PARTS: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...] = (
    ("bin_floor", (_OUT, _OUT, 0.004), (0.0, 0.0, 0.004)),
    ("bin_wall_px", (BIN_WALL, _OUT, BIN_HEIGHT / 2), (_OUT, 0.0, BIN_HEIGHT / 2)),
    ("bin_wall_nx", (BIN_WALL, _OUT, BIN_HEIGHT / 2), (-_OUT, 0.0, BIN_HEIGHT / 2)),
    ("bin_wall_py", (_OUT, BIN_WALL, BIN_HEIGHT / 2), (0.0, _OUT, BIN_HEIGHT / 2)),
    ("bin_wall_ny", (_OUT, BIN_WALL, BIN_HEIGHT / 2), (0.0, -_OUT, BIN_HEIGHT / 2)),
)
DROP_HEIGHT = 0.10  # m, the cube's centre when the jaws open (above the walls)


class PickPlaceBin(Task):
    name = "pick_place_bin"
    gym_name = "PickPlaceBin"
    max_steps = 150
    instructions = Instructions(
        train=(
            "put the {color} cube in the bin",
            "place the {color} block into the bin",
            "drop the {color} cube into the box",
            "pick up the {color} cube and put it in the bin",
            "move the {color} block into the bin",
        ),
        heldout=(
            "stow the {color} block inside the container",
            "get the {color} cube into the bin",
        ),
    )
    DISTRACTORS = (cube("distractor_cube"), can("distractor_can"))

    def objects(self) -> tuple[ObjectSpec, ...]:
        parts = tuple(
            ObjectSpec(name, "box", half, BIN_RGBA, mass=0.0, pos=offset)
            for name, half, offset in BIN_PARTS
        )
        return (cube("target"), *parts, *self.DISTRACTORS)

    def sample(self, rng: np.random.Generator, randomize_colors: bool) -> Episode:
        color = layout.pick_colors(rng, 1)[0]
        bin_xy = layout.sample_xys(rng, [_OUT * 1.42], x_range=(0.4, 0.66), gap=0.0)[0]
        xys = layout.sample_xys(rng, [0.03] * 3, fixed=[(bin_xy, _OUT * 1.42)], gap=0.04)
        episode = Episode(
            poses={"target": resting_pose(xys[0], CUBE_HALF, float(rng.uniform(-np.pi, np.pi)))},
            rgba={"target": layout.color_rgba(color, rng, randomize_colors)},
            words={"color": color},
            roles={"target": "target"},
            points={"bin": np.array([bin_xy[0], bin_xy[1], 0.0])},
        )
        # A grey bin whose shade varies under domain randomisation (it is never a palette colour).
        shade = BIN_RGBA
        if randomize_colors:
            shade = (*np.clip(np.array(BIN_RGBA[:3]) * rng.uniform(0.7, 1.4), 0, 1), 1.0)
        for name, _, offset in BIN_PARTS:
            episode.poses[name] = (episode.points["bin"] + np.array(offset), np.eye(4)[0])
            episode.rgba[name] = shade
        distractors(episode, self.DISTRACTORS, xys[1:], rng, {color}, randomize_colors)
        return episode

    def is_success(self, engine: Engine, episode: Episode) -> bool:
        pos, _ = engine.object_pose("target")
        rel = pos - episode.points["bin"]
        inside = bool(np.all(np.abs(rel[:2]) < BIN_INNER - CUBE_HALF * 0.5))
        return inside and rel[2] < BIN_HEIGHT and not engine.is_grasped("target")

    def expert_phases(self, episode: Episode) -> list[Phase]:
        phrase = f"{episode.words['color']} cube"
        drop = episode.points["bin"] + np.array([0.0, 0.0, DROP_HEIGHT])
        return pick_phases("target", phrase, cube_grasp_yaw("target")) + place_phases(
            "target", phrase, lambda e: drop, "the bin"
        )
