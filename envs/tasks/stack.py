"""Stack one named cube on another, with a distractor cube and can."""

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

PLACE_GAP = 0.005  # m left between the cubes when the jaws open


class StackCube(Task):
    name = "stack"
    gym_name = "StackCube"
    max_steps = 150
    instructions = Instructions(
        train=(
            "stack the {color} cube on the {base} cube",
            "put the {color} block on top of the {base} block",
            "place the {color} cube onto the {base} cube",
            "pick up the {color} cube and set it on the {base} cube",
            "build a tower with the {color} cube on the {base} cube",
        ),
        heldout=(
            "rest the {color} block on the {base} one",
            "the {color} cube goes on top of the {base} cube",
        ),
    )
    DISTRACTORS = (cube("distractor_cube"), can("distractor_can"))

    def objects(self) -> tuple[ObjectSpec, ...]:
        return (cube("target"), cube("base"), *self.DISTRACTORS)

    def sample(self, rng: np.random.Generator, randomize_colors: bool) -> Episode:
        color, base = layout.pick_colors(rng, 2)
        xys = layout.sample_xys(rng, [0.03] * 4, gap=0.05)
        episode = Episode(
            poses={
                "target": resting_pose(xys[0], CUBE_HALF, float(rng.uniform(-np.pi, np.pi))),
                "base": resting_pose(xys[1], CUBE_HALF, float(rng.uniform(-np.pi, np.pi))),
            },
            rgba={
                "target": layout.color_rgba(color, rng, randomize_colors),
                "base": layout.color_rgba(base, rng, randomize_colors),
            },
            words={"color": color, "base": base},
            roles={"target": "target", "base": "base"},
        )
        distractors(episode, self.DISTRACTORS, xys[2:], rng, {color, base}, randomize_colors)
        return episode

    def is_success(self, engine: Engine, episode: Episode) -> bool:
        top, _ = engine.object_pose("target")
        bottom, _ = engine.object_pose("base")
        aligned = np.linalg.norm(top[:2] - bottom[:2]) < CUBE_HALF
        on_top = abs(top[2] - bottom[2] - 2 * CUBE_HALF) < 0.006
        return bool(aligned and on_top and not engine.is_grasped("target"))

    def expert_phases(self, episode: Episode) -> list[Phase]:
        phrase = f"{episode.words['color']} cube"

        def on_base(e: Engine) -> np.ndarray:
            return e.object_pose("base")[0] + np.array([0, 0, 2 * CUBE_HALF + PLACE_GAP])

        return pick_phases("target", phrase, cube_grasp_yaw("target")) + place_phases(
            "target", phrase, on_base, f"the {episode.words['base']} cube", cube_grasp_yaw("base")
        )
