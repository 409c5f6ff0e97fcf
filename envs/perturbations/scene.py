"""Scene factors: camera pose, lighting, table, object colours, distractors, object positions
and sizes. Each level lies outside what training episodes see with domain randomisation
(``envs/domain_randomization.py``, ``envs/tasks/layout.py``)."""

from __future__ import annotations

import dataclasses

import numpy as np

from embodied_mm.envs.engine import ObjectSpec, Randomization, SceneSpec
from embodied_mm.envs.perturbations.base import Context, Factor
from embodied_mm.envs.tasks import layout
from embodied_mm.envs.tasks.base import Episode, can, cube, resting_pose


def _unit(rng: np.random.Generator, n: int = 3) -> np.ndarray:
    v = rng.normal(size=n)
    return v / np.linalg.norm(v)


class CameraShift(Factor):
    """World cameras move by ``value`` metres in a random direction and aim at a point moved
    by half that (so their viewing angle changes too). Training jitter: 2.5 cm per axis of
    position, none of aim."""

    name = "camera_shift"
    group = "scene"
    description = "world cameras moved (m) and re-aimed"
    unit = "m"
    levels = {1: 0.05, 2: 0.10, 3: 0.15}  # noqa: RUF012

    def appearance(self, rnd: Randomization, rng: np.random.Generator, ctx: Context) -> None:
        for cam in ctx.scene.cameras:
            if cam.mount != "world":
                continue
            shift = _unit(rng) * float(self.value)
            aim = _unit(rng) * float(self.value) / 2
            base = np.asarray(rnd.camera_pos_jitter.get(cam.name, (0.0, 0.0, 0.0)))
            rnd.camera_pos_jitter[cam.name] = tuple(float(x) for x in base + shift)
            rnd.camera_target_jitter[cam.name] = tuple(float(x) for x in aim)


class Lighting(Factor):
    """The key light is ``value`` times brighter or dimmer than nominal (either, at random)
    and comes from a direction moved by ``value / 2`` more. Training: intensity 0.7-1.25,
    direction jitter 0.35 per axis."""

    name = "lighting"
    group = "scene"
    description = "key light x/÷ value, direction moved"
    unit = "x"
    levels = {1: 1.8, 2: 2.5, 3: 3.5}  # noqa: RUF012

    def appearance(self, rnd: Randomization, rng: np.random.Generator, ctx: Context) -> None:
        f = float(self.value)
        rnd.light_intensity = f if rng.random() < 0.5 else 1.0 / f
        extra = _unit(rng) * f / 2
        rnd.light_dir_jitter = tuple(float(x) for x in np.asarray(rnd.light_dir_jitter) + extra)


# Table colours far from the training range (the wood tone x 0.6-1.3, +-0.08 per channel).
UNSEEN_TABLE_RGB = ((0.85, 0.88, 0.95), (0.08, 0.25, 0.12), (0.05, 0.05, 0.07), (0.3, 0.45, 0.8))


class TableTexture(Factor):
    """Level 1: a table colour no training episode has, on the episode's texture. Level 2: a
    checkerboard in one of the objects' palette colours (the table looks like the objects)."""

    name = "table_texture"
    group = "scene"
    description = "unseen table colour / object-coloured checker"
    levels = {1: "unseen_colour", 2: "palette_checker"}  # noqa: RUF012

    def appearance(self, rnd: Randomization, rng: np.random.Generator, ctx: Context) -> None:
        if self.level == 1:
            rgb = UNSEEN_TABLE_RGB[int(rng.integers(len(UNSEEN_TABLE_RGB)))]
        else:
            names = list(layout.PALETTE)
            rgb = layout.PALETTE[names[int(rng.integers(len(names)))]]
            rnd.table_texture = "checker"
        rnd.table_rgba = (*(float(c) for c in rgb), 1.0)


class ObjectColor(Factor):
    """Every object's colour moves by ``value`` per channel (sign at random), beyond the
    training shading of +-0.07; the hue mostly stays nameable."""

    name = "object_color"
    group = "scene"
    description = "object shades moved per channel"
    unit = "rgb"
    levels = {1: 0.15, 2: 0.3}  # noqa: RUF012

    def episode(self, episode: Episode, rng: np.random.Generator, ctx: Context) -> None:
        for name in sorted(episode.rgba):
            rgba = np.asarray(episode.rgba[name], dtype=np.float64)
            signs = rng.choice([-1.0, 1.0], size=3)
            rgb = np.clip(rgba[:3] + signs * float(self.value), 0.0, 1.0)
            episode.rgba[name] = (float(rgb[0]), float(rgb[1]), float(rgb[2]), float(rgba[3]))


EXTRA_PREFIX = "extra_distractor_"


def extra_distractor_specs(n: int) -> tuple[ObjectSpec, ...]:
    """``n`` more bodies, cubes and cans in turn, parked off the table until placed."""
    specs = []
    for i in range(n):
        spec = cube(f"{EXTRA_PREFIX}{i}") if i % 2 == 0 else can(f"{EXTRA_PREFIX}{i}")
        specs.append(dataclasses.replace(spec, pos=(0.5, 3.0 + 0.2 * i, 0.05)))
    return tuple(specs)


def _footprint(spec: ObjectSpec) -> float:
    return float(np.hypot(spec.size[0], spec.size[1])) if spec.shape == "box" else spec.size[0]


def _placed(episode: Episode, scene: SceneSpec) -> list[tuple[np.ndarray, float]]:
    specs = {s.name: s for s in scene.objects}
    return [(np.asarray(pos[:2]), _footprint(specs[n])) for n, (pos, _) in episode.poses.items()]


class Distractors(Factor):
    """``value`` more distractors (cubes and cans) on the table, in colours other than the
    named object's."""

    name = "distractors"
    group = "scene"
    description = "extra distractor objects"
    unit = "objects"
    levels = {1: 2, 2: 4}  # noqa: RUF012

    def scene(self, scene: SceneSpec) -> SceneSpec:
        return dataclasses.replace(
            scene, objects=(*scene.objects, *extra_distractor_specs(int(self.value)))
        )

    def episode(self, episode: Episode, rng: np.random.Generator, ctx: Context) -> None:
        extras = [s for s in ctx.scene.objects if s.name.startswith(EXTRA_PREFIX)]
        xys = layout.sample_xys(rng, [0.03] * len(extras), fixed=_placed(episode, ctx.scene))
        named = set(episode.words.values())
        for spec, xy in zip(extras, xys, strict=True):
            half = spec.size[2] if spec.shape == "box" else spec.size[-1]
            episode.poses[spec.name] = resting_pose(xy, half, float(rng.uniform(-np.pi, np.pi)))
            color = layout.pick_colors(rng, 1, exclude=named)[0]
            episode.rgba[spec.name] = layout.color_rgba(color, rng, True)


def _in_box(xy: np.ndarray, margin: float = 0.0) -> bool:
    (x0, x1), (y0, y1) = layout.WORKSPACE_X, layout.WORKSPACE_Y
    return bool(x0 - margin <= xy[0] <= x1 + margin and y0 - margin <= xy[1] <= y1 + margin)


class ObjectPosition(Factor):
    """The task's ``target`` object stands outside the training region (the workspace box
    ``layout.WORKSPACE_X/Y``), at most ``value`` metres beyond its edge."""

    name = "object_position"
    group = "scene"
    description = "target placed beyond the training region (m)"
    unit = "m"
    levels = {1: 0.04, 2: 0.08}  # noqa: RUF012

    def episode(self, episode: Episode, rng: np.random.Generator, ctx: Context) -> None:
        name = episode.roles.get("target")
        if name is None:
            return
        m = float(self.value)
        specs = {s.name: s for s in ctx.scene.objects}
        others = [(np.asarray(p[:2]), _footprint(specs[n]))
                  for n, (p, _) in episode.poses.items() if n != name]  # fmt: skip
        pos, quat = episode.poses[name]
        (x0, x1), (y0, y1) = layout.WORKSPACE_X, layout.WORKSPACE_Y
        for _ in range(5000):
            xy = np.array([rng.uniform(x0 - m, x1 + m), rng.uniform(y0 - m, y1 + m)])
            if _in_box(xy, 0.01) or any(np.linalg.norm(xy - p) < r + 0.05 for p, r in others):
                continue
            episode.poses[name] = (np.array([xy[0], xy[1], pos[2]]), quat)
            return
        raise RuntimeError(f"could not place {name!r} outside the training region")


class ObjectSize(Factor):
    """Every movable object is scaled by ``value`` (level 1 smaller, level 2 larger than the
    4 cm cubes of training)."""

    name = "object_size"
    group = "scene"
    description = "movable objects scaled"
    unit = "x"
    levels = {1: 0.7, 2: 1.4}  # noqa: RUF012

    def scene(self, scene: SceneSpec) -> SceneSpec:
        s = float(self.value)
        objects = tuple(
            dataclasses.replace(o, size=tuple(x * s for x in o.size)) if o.mass > 0 else o
            for o in scene.objects
        )
        return dataclasses.replace(scene, objects=objects)

    def episode(self, episode: Episode, rng: np.random.Generator, ctx: Context) -> None:
        movable = {o.name for o in ctx.scene.objects if o.mass > 0}
        for name in movable & set(episode.poses):
            pos, quat = episode.poses[name]
            episode.poses[name] = (np.array([pos[0], pos[1], pos[2] * float(self.value)]), quat)
