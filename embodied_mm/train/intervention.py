"""``train --intervention-weight W`` / ``--intervention-only``: how often the sampler draws
the frames a person drove (``intervention`` = 1, from ``deploy --teleop --record``).

Weighting is done by sampling, not in the loss: every frame of a batch weighs the same in
every loss term (actions, plans, goal), and a frame with weight W is drawn W times as often
as a policy frame (:class:`~embodied_mm.train.sampler.ResumableShardSampler`, with
replacement), so the data order stays a function of ``(seed, epoch)`` and a resumed run still
matches an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from embodied_mm.errors import UsageError
from embodied_mm.features import INTERVENTION


def intervention_sample_weights(
    parts: list[Any], weight: float, only: bool, names: list[str] | None = None
) -> torch.Tensor | None:
    """(N,) per-sample weights over the concatenated window datasets ``parts`` (each with
    ``.frames.columns``): ``weight`` for intervention frames, 1 for the others (0 with
    ``only``). None when every frame weighs the same (``weight`` 1, not ``only``). A dataset
    without the ``intervention`` feature beside ones with it (scripted or teleoperated demos
    mixed with deployment runs) has no intervention frames: its frames weigh 1 (0 with
    ``only``).

    Raises:
        UsageError: no dataset has the ``intervention`` feature, or no frame is left to draw.
    """
    if weight == 1 and not only:
        return None
    names = names or [str(i) for i in range(len(parts))]
    if not any(INTERVENTION in part.frames.columns for part in parts):
        which = f"dataset {names[0]} has no" if len(names) == 1 else "no dataset has an"
        raise UsageError(
            f"--intervention-weight/--intervention-only: {which} {INTERVENTION!r} feature "
            "(record one with deploy --teleop --record)"
        )
    flags = []
    for part in parts:
        column = part.frames.columns.get(INTERVENTION)
        absent = column is None
        flags.append(np.zeros(len(part.frames), bool) if absent else np.asarray(column) > 0)
    person = torch.from_numpy(np.concatenate(flags))  # (N,) bool
    weights = torch.where(person, float(weight), 0.0 if only else 1.0).to(torch.float64)
    if weights.sum() <= 0:
        raise UsageError(
            f"no frame left to train on: {int(person.sum())} intervention frames with "
            f"--intervention-weight {weight:g}" + (" and --intervention-only" if only else "")
        )
    return weights
