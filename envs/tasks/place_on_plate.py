"""Put a named can on a plate, with a distractor cube and can."""

from __future__ import annotations

import numpy as np

from embodied_mm.envs.engine import Engine, ObjectSpec
from embodied_mm.envs.expert import Phase
from embodied_mm.envs.tasks import layout
from embodied_mm.envs.tasks.base import (
    Episode,
    Instructions,
    Task,
    can,
    cube,
    distractors,
    resting_pose,
)
from embodied_mm.envs.tasks.skills import pick_phases, place_phases

CAN_RADIUS, CAN_HALF = 0.02, 0.03
PLATE_RADIUS, PLATE_HALF = 0.065, 0.005
PLATE_RGBA = (0.92, 0.92, 0.9, 1.0)
PLACE_GAP = 0.006  # m between the can's bottom and the plate when the jaws open


class PlaceOnPlate(Task):
    name = "place_on_plate"
    gym_name = "PlaceOnPlate"
    max_steps = 150
    instructions = Instructions(
        train=(
            "put the {color} can on the plate",
            "place the {color} can onto the plate",
            "move the {color} cylinder to the plate",
            "pick up the {color} can and set it on the plate",
            "set the {color} can down on the plate",
        ),
        heldout=(
            "serve the {color} can on the dish",
            "the {color} can belongs on the plate",
        ),
    )
    DISTRACTORS = (cube("distractor_cube"), can("distractor_can"))

    def objects(self) -> tuple[ObjectSpec, ...]:
        plate = ObjectSpec("plate", "cylinder", (PLATE_RADIUS, PLATE_HALF), PLATE_RGBA, mass=0.0)
        return (can("target", CAN_RADIUS, CAN_HALF), plate, *self.DISTRACTORS)

    def sample(self, rng: np.random.Generator, randomize_colors: bool) -> Episode:
        color = layout.pick_colors(rng, 1)[0]
        plate_xy, *xys = layout.sample_xys(rng, [PLATE_RADIUS, 0.03, 0.03, 0.03], gap=0.04)
        episode = Episode(
            poses={
                "target": resting_pose(xys[0], CAN_HALF),
                "plate": resting_pose(plate_xy, PLATE_HALF),
            },
            rgba={"target": layout.color_rgba(color, rng, randomize_colors), "plate": PLATE_RGBA},
            words={"color": color},
            roles={"target": "target"},
            points={"plate": np.array([plate_xy[0], plate_xy[1], 2 * PLATE_HALF])},
        )
        distractors(episode, self.DISTRACTORS, xys[1:], rng, {color}, randomize_colors)
        return episode

    def is_success(self, engine: Engine, episode: Episode) -> bool:
        pos, _ = engine.object_pose("target")
        rel = pos - episode.points["plate"]
        centred = np.linalg.norm(rel[:2]) < PLATE_RADIUS - CAN_RADIUS
        standing = abs(rel[2] - CAN_HALF) < 0.006
        return bool(centred and standing and not engine.is_grasped("target"))

    def expert_phases(self, episode: Episode) -> list[Phase]:
        phrase = f"{episode.words['color']} can"
        place = episode.points["plate"] + np.array([0.0, 0.0, CAN_HALF + PLACE_GAP])
        return pick_phases("target", phrase, None) + place_phases(
            "target", phrase, lambda e: place, "the plate"
        )
