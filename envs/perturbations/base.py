"""What a perturbation factor is, and how the env applies the active ones.

A :class:`Factor` is one way a test episode can differ from the training distribution (a
shifted camera, a noisy image, a typo, ...), with a few numbered levels: level 0 is no
perturbation, higher levels are stronger. The env (:class:`~embodied_mm.envs.tabletop_env.
TabletopEnv`) calls the hooks of every active factor at fixed points of its construction,
reset and step; each hook that draws randomness gets the factor's own generator, seeded from
the episode seed, so ``reset(seed)`` reproduces the perturbation and a factor's draws never
shift the episode's own (object poses, colours, instruction) or another factor's.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embodied_mm.envs.engine import Randomization, SceneSpec

if TYPE_CHECKING:
    from embodied_mm.envs.tasks.base import Episode, Task

Pixels = dict[str, np.ndarray]  # camera -> (H, W, 3) uint8


@dataclass(frozen=True)
class Context:
    """What the episode-time hooks may read: the task, the (perturbed) scene, the action
    mode and the episode split."""

    task: Task
    scene: SceneSpec
    action_mode: str
    split: str


class Factor:
    """One perturbation factor. Subclasses set the class attributes and override the hooks
    they need; the defaults leave everything alone.

    ``levels[k]`` is the strength at level ``k`` (k = 1, 2, ...): a number (metres, pixels,
    a probability, a count, ...; ``unit`` says which) or a word.
    """

    name: ClassVar[str]
    group: ClassVar[str]  # "scene" | "robot" | "language"
    description: ClassVar[str]
    unit: ClassVar[str] = ""
    levels: ClassVar[dict[int, float | str]]

    def __init__(self, level: int) -> None:
        self.level = level
        self.value = self.levels[level]

    # --- construction ------------------------------------------------------------------
    def scene(self, scene: SceneSpec) -> SceneSpec:
        """The scene the engine builds (extra bodies, resized ones)."""
        return scene

    # --- reset (in this order) ---------------------------------------------------------
    def episode(self, episode: Episode, rng: np.random.Generator, ctx: Context) -> None:
        """Edit the task's draw in place (poses, colours)."""

    def instruction(
        self, text: str, episode: Episode, rng: np.random.Generator, ctx: Context
    ) -> str:
        """The instruction the policy reads."""
        return text

    def appearance(self, rnd: Randomization, rng: np.random.Generator, ctx: Context) -> None:
        """Edit the episode's lighting, camera and table settings in place."""

    def initial_joints(self, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(7,) arm joints the episode starts from."""
        return q

    def start(self, rng: np.random.Generator, hold_action: np.ndarray) -> None:
        """A new episode starts; ``hold_action`` is the action that keeps the robot still."""

    # --- every step --------------------------------------------------------------------
    def observe(self, pixels: Pixels, rng: np.random.Generator) -> Pixels:
        """The camera images the policy gets (after a reset and after every step)."""
        return pixels

    def act(self, action: np.ndarray) -> np.ndarray:
        """The (valid, clipped) action the robot executes this step."""
        return action


def factor_rng(seed: int | None, name: str) -> np.random.Generator:
    """The generator of factor ``name`` for an episode seeded ``seed`` (``None``: fresh
    entropy); independent of the episode's own generator and of other factors'."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(
        [int(seed) & 0xFFFFFFFF, int(seed) >> 32, zlib.crc32(name.encode())]
    )


class Perturbation:
    """The active factors of one env, applied in registry order. Empty (every level 0): the
    env is bit-identical to an unperturbed one."""

    def __init__(self, factors: list[Factor]) -> None:
        self.factors = [f for f in factors if f.level != 0]
        self._rngs: dict[str, np.random.Generator] = {
            f.name: factor_rng(None, f.name) for f in self.factors
        }

    @property
    def levels(self) -> dict[str, int]:
        return {f.name: f.level for f in self.factors}

    def __bool__(self) -> bool:
        return bool(self.factors)

    def scene(self, scene: SceneSpec) -> SceneSpec:
        for f in self.factors:
            scene = f.scene(scene)
        return scene

    def seed(self, seed: int | None) -> None:
        """Re-seed every factor for an episode reset with ``seed`` (``None``: keep going)."""
        if seed is not None:
            self._rngs = {f.name: factor_rng(seed, f.name) for f in self.factors}

    def episode(self, episode: Episode, ctx: Context) -> None:
        for f in self.factors:
            f.episode(episode, self._rngs[f.name], ctx)

    def instruction(self, text: str, episode: Episode, ctx: Context) -> str:
        for f in self.factors:
            text = f.instruction(text, episode, self._rngs[f.name], ctx)
        return text

    def appearance(self, rnd: Randomization, ctx: Context) -> None:
        for f in self.factors:
            f.appearance(rnd, self._rngs[f.name], ctx)

    def initial_joints(self, q: np.ndarray) -> np.ndarray:
        for f in self.factors:
            q = f.initial_joints(q, self._rngs[f.name])
        return q

    def start(self, hold_action: np.ndarray) -> None:
        for f in self.factors:
            f.start(self._rngs[f.name], hold_action)

    def observe(self, pixels: Pixels) -> Pixels:
        for f in self.factors:
            pixels = f.observe(pixels, self._rngs[f.name])
        return pixels

    def act(self, action: np.ndarray) -> np.ndarray:
        for f in self.factors:
            action = f.act(action)
        return action

    def describe(self) -> dict[str, Any]:
        return {f.name: {"level": f.level, "value": f.value} for f in self.factors}
