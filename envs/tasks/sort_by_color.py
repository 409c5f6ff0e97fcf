"""Sort two cubes by colour: each onto the square of its own colour (a two-object task)."""

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

SQUARE_HALF = 0.045  # m, half the side of each colour square
INSIDE = SQUARE_HALF - 0.01  # m, how far a cube's centre may be from its square's centre
PLACE_GAP = 0.005  # m above the table when the jaws open
PAIRS = (("cube_a", "square_a"), ("cube_b", "square_b"))


class SortByColor(Task):
    name = "sort_by_color"
    gym_name = "SortByColor"
    max_steps = 250
    instructions = Instructions(
        train=(
            "sort the {color} and {other} cubes onto the squares of their colour",
            "put each cube on the square with the same colour",
            "place the {color} cube on the {color} square and the {other} cube on the {other} square",
            "sort the cubes by colour",
            "match the {color} and {other} blocks to their coloured squares",
        ),
        heldout=(
            "move every block onto the pad that has its colour",
            "the {color} and {other} cubes go onto their matching squares",
        ),
    )
    DISTRACTORS = (can("distractor_can"),)

    def objects(self) -> tuple[ObjectSpec, ...]:
        square = (SQUARE_HALF, SQUARE_HALF, 0.0005)
        grey = (0.5, 0.5, 0.5, 1.0)
        return (
            cube("cube_a"),
            cube("cube_b"),
            ObjectSpec("square_a", "box", square, grey, mass=0.0, collide=False),
            ObjectSpec("square_b", "box", square, grey, mass=0.0, collide=False),
            *self.DISTRACTORS,
        )

    def sample(self, rng: np.random.Generator, randomize_colors: bool) -> Episode:
        color, other = layout.pick_colors(rng, 2)
        r_square = SQUARE_HALF * 1.42
        sq_a, sq_b, *xys = layout.sample_xys(rng, [r_square, r_square, 0.03, 0.03, 0.03], gap=0.03)
        episode = Episode(poses={}, rgba={}, words={"color": color, "other": other})
        episode.roles = {"target": "cube_a", "second": "cube_b"}
        for (cube_name, square_name), name, cube_xy, sq_xy in zip(
            PAIRS, (color, other), xys[:2], (sq_a, sq_b), strict=True
        ):
            rgba = layout.color_rgba(name, rng, randomize_colors)
            episode.poses[cube_name] = resting_pose(
                cube_xy, CUBE_HALF, float(rng.uniform(-np.pi, np.pi))
            )
            episode.poses[square_name] = resting_pose(sq_xy, 0.0005)
            episode.rgba[cube_name] = rgba
            episode.rgba[square_name] = rgba
            episode.points[square_name] = np.array([sq_xy[0], sq_xy[1], CUBE_HALF + PLACE_GAP])
        distractors(episode, self.DISTRACTORS, xys[2:], rng, {color, other}, randomize_colors)
        return episode

    def is_success(self, engine: Engine, episode: Episode) -> bool:
        for cube_name, square_name in PAIRS:
            pos, _ = engine.object_pose(cube_name)
            off = np.abs(pos[:2] - episode.points[square_name][:2])
            if np.any(off > INSIDE) or pos[2] > 2 * CUBE_HALF or engine.is_grasped(cube_name):
                return False
        return True

    def dense_reward(self, engine: Engine, episode: Episode) -> float:
        dists = [
            np.linalg.norm(engine.object_pose(c)[0][:2] - episode.points[s][:2]) for c, s in PAIRS
        ]
        return float(np.clip(1.0 - np.mean(dists) / 0.3, 0.0, 1.0))

    def expert_phases(self, episode: Episode) -> list[Phase]:
        phases: list[Phase] = []
        for (cube_name, square_name), color in zip(
            PAIRS, (episode.words["color"], episode.words["other"]), strict=True
        ):
            phrase = f"{color} cube"
            target = episode.points[square_name]
            first = len(phases)
            phases += pick_phases(cube_name, phrase, cube_grasp_yaw(cube_name), first=first)
            phases += place_phases(
                cube_name, phrase, lambda e, t=target: t, f"the {color} square", pick_first=first
            )
        return phases
