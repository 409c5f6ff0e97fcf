"""``train --dataset-mix``: how often each ``--dataset`` is drawn.

``frames`` (the default) draws every frame alike, so a dataset is drawn in proportion to its
length: among the suite's demos SortByColor's (121 frames each) take about a third of the
draws and ReachObject's (19 frames) one in twenty. ``equal`` draws each dataset equally
often, every sample of a dataset alike (in the ground stage, each dataset's first frames), as
multi-dataset mixtures give each dataset a weight of its own.

Like ``--intervention-weight`` it works in the sampler (draws with replacement, a function of
``(seed, epoch)``, so exact resume still holds), and the two multiply.
"""

from __future__ import annotations

import torch


def dataset_mix_weights(lengths: list[int], mix: str) -> torch.Tensor | None:
    """(sum(lengths),) per-sample weights over datasets of ``lengths`` samples, concatenated
    in that order; each dataset's weights sum to 1 with ``equal``. None for ``frames`` (every
    sample alike: the plain shuffle) and for a single dataset. ``mix``: ``TrainConfig.dataset_mix``."""
    if mix == "frames" or len(lengths) < 2:
        return None
    return torch.cat([torch.full((n,), 1.0 / n, dtype=torch.float64) for n in lengths])


def combined_weights(*weights: torch.Tensor | None) -> torch.Tensor | None:
    """The product of the given per-sample weights (each (N,) or None: all alike)."""
    given = [w for w in weights if w is not None]
    if not given:
        return None
    out = given[0]
    for w in given[1:]:
        out = out * w
    return out
