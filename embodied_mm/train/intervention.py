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
    ``only``). None when every frame weighs the same (``weight`` 1, not ``only``).

    Raises:
        UsageError: a dataset has no ``intervention`` feature, or no frame is left to draw.
    """
    if weight == 1 and not only:
        return None
    names = names or [
        str(getattr(getattr(p, "meta", None), "root", i)) for i, p in enumerate(parts)
    ]
    flags = []
    for part, name in zip(parts, names, strict=True):
        if INTERVENTION not in part.frames.columns:
            raise UsageError(
                f"--intervention-weight/--intervention-only: dataset {name} has no "
                f"{INTERVENTION!r} feature (record one with deploy --teleop --record)"
            )
        flags.append(np.asarray(part.frames.columns[INTERVENTION]).reshape(-1) > 0)
    person = torch.from_numpy(np.concatenate(flags))  # (N,) bool
    weights = torch.where(person, float(weight), 0.0 if only else 1.0).to(torch.float64)
    if weights.sum() <= 0:
        raise UsageError(
            f"no frame left to train on: {int(person.sum())} intervention frames with "
            f"--intervention-weight {weight:g}" + (" and --intervention-only" if only else "")
        )
    return weights
