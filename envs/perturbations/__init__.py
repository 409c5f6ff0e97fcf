"""Named perturbation factors for robustness evaluation, defined once for every command.

``gymnasium.make(id, perturb={"camera_shift": 2, "typos": 1})`` builds a perturbed env; the
``eval``, ``rollout`` and ``record`` commands take the same as ``--perturb NAME=LEVEL``
(repeatable), and ``eval --suite robustness`` runs one factor at a time at each of its
levels. Level 0 of every factor is no perturbation (bit-identical to an unperturbed env).
:func:`factor_table` lists the factors, their levels and what each level means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from embodied_mm.envs.perturbations.base import Context, Factor, Perturbation, factor_rng
from embodied_mm.envs.perturbations.language import (
    AbsentObject,
    ExtraWords,
    Phrasing,
    Typos,
    WordOrder,
)
from embodied_mm.envs.perturbations.scene import (
    CameraShift,
    Distractors,
    Lighting,
    ObjectColor,
    ObjectPosition,
    ObjectSize,
    TableTexture,
)
from embodied_mm.envs.perturbations.sensing import (
    ActionLatency,
    Blur,
    FrameDrop,
    ImageNoise,
    JointNoise,
)
from embodied_mm.errors import UsageError

__all__ = [
    "FACTORS",
    "Context",
    "Factor",
    "Perturbation",
    "factor_rng",
    "factor_table",
    "make_perturbation",
    "parse_perturb_args",
]

# Registry order is application order (scene edits before the instruction that names them).
FACTORS: dict[str, type[Factor]] = {
    f.name: f
    for f in (
        CameraShift, Lighting, TableTexture, Distractors, ObjectPosition, ObjectSize,
        ObjectColor, JointNoise, ImageNoise, Blur, FrameDrop, ActionLatency, Phrasing,
        AbsentObject, ExtraWords, WordOrder, Typos,
    )
}  # fmt: skip


def _level_list(factor: type[Factor]) -> str:
    return ", ".join(
        f"{k} ({v}{factor.unit and ' ' + factor.unit})" for k, v in factor.levels.items()
    )


def check_level(name: str, level: int | str) -> int:
    """The level number of factor ``name``; a UsageError naming the known factors or levels."""
    if name not in FACTORS:
        raise UsageError(f"unknown perturbation {name!r}; known: {', '.join(FACTORS)}")
    factor = FACTORS[name]
    try:
        k = int(level)
    except (TypeError, ValueError):
        k = -1
    if k != 0 and k not in factor.levels:
        raise UsageError(
            f"perturbation {name} has no level {level!r}; levels: 0 (none), {_level_list(factor)}"
        )
    return k


def make_perturbation(perturb: Mapping[str, int | str] | None) -> Perturbation:
    """The env's :class:`Perturbation` of ``{factor name: level}`` (``None``: none)."""
    levels = {name: check_level(name, level) for name, level in (perturb or {}).items()}
    return Perturbation([FACTORS[n](levels[n]) for n in FACTORS if levels.get(n, 0) != 0])


def parse_perturb_args(items: Iterable[str]) -> dict[str, int]:
    """``["camera_shift=2", "typos=1"]`` (the ``--perturb`` options) → ``{name: level}``."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, level = item.partition("=")
        if not sep:
            raise UsageError(
                f"--perturb takes NAME=LEVEL, got {item!r}; names: {', '.join(FACTORS)}"
            )
        name = name.strip()
        if name in out:
            raise UsageError(f"--perturb {name} is given twice")
        out[name] = check_level(name, level.strip())
    return out


def factor_table() -> list[dict[str, object]]:
    """Every factor: name, group, what it does and its levels (for docs and ``envs``)."""
    return [
        {"name": f.name, "group": f.group, "description": f.description, "unit": f.unit,
         "levels": dict(f.levels)}
        for f in FACTORS.values()
    ]  # fmt: skip
