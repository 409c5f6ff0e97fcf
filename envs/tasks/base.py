"""What a task is: scene, reset distribution, instructions, success, expert phases.

A task never touches a simulator directly: it describes the scene with
:class:`~embodied_mm.envs.engine.ObjectSpec`, samples an :class:`Episode` from a seeded RNG,
and reads state back through :class:`~embodied_mm.envs.engine.Engine`, so it means the same
thing on MuJoCo and PyBullet.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from embodied_mm.envs.engine import Engine, ObjectSpec
from embodied_mm.envs.rotations import yaw_quat
from embodied_mm.envs.tasks import layout

if TYPE_CHECKING:
    from embodied_mm.envs.expert import Phase

Split = Literal["train", "heldout"]
SPLITS: tuple[Split, ...] = ("train", "heldout")


@dataclass(frozen=True)
class Instructions:
    """Paraphrase templates; ``{name}`` fields are filled from :attr:`Episode.words`.

    ``heldout`` paraphrases never appear in training demos: evaluating on them measures
    generalisation to unseen wording.
    """

    train: tuple[str, ...]
    heldout: tuple[str, ...]

    def for_split(self, split: str) -> tuple[str, ...]:
        if split not in SPLITS:
            raise ValueError(f"instruction split {split!r} is not one of {SPLITS}")
        return self.train if split == "train" else self.heldout


@dataclass
class Episode:
    """One draw of a task's reset distribution."""

    poses: dict[str, tuple[np.ndarray, np.ndarray]]  # object -> (pos (3,), quat (4,))
    rgba: dict[str, tuple[float, float, float, float]]
    words: dict[str, str]  # template fields, e.g. {"color": "red"}
    roles: dict[str, str] = field(default_factory=dict)  # e.g. {"target": "cube_0"}
    # Derived geometry the success test and expert need (zone centre, bin centre, ...).
    points: dict[str, np.ndarray] = field(default_factory=dict)


class Task(abc.ABC):
    """A language-conditioned tabletop task. Subclasses set the class attributes and
    implement :meth:`objects`, :meth:`sample`, :meth:`is_success` and :meth:`expert_phases`."""

    name: str  # registry key, e.g. "pick_lift"
    gym_name: str  # Gymnasium id stem, e.g. "PickLift" -> "embodied_mm/PickLift-v0"
    max_steps: int  # at 20 Hz
    instructions: Instructions

    @abc.abstractmethod
    def objects(self) -> tuple[ObjectSpec, ...]:
        """The fixed set of bodies; reset only moves and recolours them."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, randomize_colors: bool) -> Episode:
        """Draw object poses, colours and the words of the instruction."""

    @abc.abstractmethod
    def is_success(self, engine: Engine, episode: Episode) -> bool:
        """The task's success predicate on the current state."""

    @abc.abstractmethod
    def expert_phases(self, episode: Episode) -> list[Phase]:
        """The scripted expert's phases, in order (see :mod:`embodied_mm.envs.expert`)."""

    def dense_reward(self, engine: Engine, episode: Episode) -> float:
        """Shaped reward in [0, 1]; default: 1 - TCP distance to the task's ``target`` object."""
        tcp, _ = engine.ee_pose()
        obj, _ = engine.object_pose(episode.roles["target"])
        return float(np.clip(1.0 - np.linalg.norm(tcp - obj) / 0.5, 0.0, 1.0))

    def instruction(self, episode: Episode, rng: np.random.Generator, split: str) -> str:
        templates = self.instructions.for_split(split)
        return templates[int(rng.integers(len(templates)))].format(**episode.words)


# --- helpers shared by the task files ---------------------------------------------------------
CUBE_HALF = 0.02  # m; 4 cm cubes fit the 8 cm gripper with room to spare
LIFT_HEIGHT = 0.10  # m above the table that counts as "lifted" (object centre)


def cube(name: str, mass: float = 0.05) -> ObjectSpec:
    return ObjectSpec(name, "box", (CUBE_HALF,) * 3, (0.5, 0.5, 0.5, 1.0), mass=mass)


def can(name: str, radius: float = 0.02, half_height: float = 0.03) -> ObjectSpec:
    return ObjectSpec(name, "cylinder", (radius, half_height), (0.5, 0.5, 0.5, 1.0), mass=0.05)


def resting_pose(
    xy: np.ndarray, half_height: float, yaw: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pose of a body standing on the table at ``xy`` turned by ``yaw`` about z."""
    return np.array([xy[0], xy[1], half_height]), yaw_quat(yaw)


def distractors(
    episode: Episode,
    specs: tuple[ObjectSpec, ...],
    xys: list[np.ndarray],
    rng: np.random.Generator,
    used_colors: set[str],
    randomize_colors: bool,
) -> None:
    """Place the distractor bodies at ``xys`` with random yaw and colours unlike the task's."""
    for spec, xy in zip(specs, xys, strict=True):
        half = spec.size[2] if spec.shape == "box" else spec.size[-1]
        episode.poses[spec.name] = resting_pose(xy, half, float(rng.uniform(-np.pi, np.pi)))
        color = layout.pick_colors(rng, 1, exclude=used_colors)[0]
        used_colors.add(color)
        episode.rgba[spec.name] = layout.color_rgba(color, rng, randomize_colors)


def named_cube_episode(
    rng: np.random.Generator,
    distractor_specs: tuple[ObjectSpec, ...],
    gap: float,
    randomize_colors: bool,
) -> Episode:
    """One cube ``"target"`` of a random named colour among the distractors, all 3 cm discs
    ``gap`` apart (the reset of reach and pick-and-lift)."""
    color = layout.pick_colors(rng, 1)[0]
    xys = layout.sample_xys(rng, [0.03] * (1 + len(distractor_specs)), gap=gap)
    episode = Episode(
        poses={"target": resting_pose(xys[0], CUBE_HALF, float(rng.uniform(-np.pi, np.pi)))},
        rgba={"target": layout.color_rgba(color, rng, randomize_colors)},
        words={"color": color},
        roles={"target": "target"},
    )
    distractors(episode, distractor_specs, xys[1:], rng, {color}, randomize_colors)
    return episode
