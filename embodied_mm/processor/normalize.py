"""``normalize`` / ``unnormalize``: features to the model's units and actions back to robot
units (tensor stage), by the stats in the checkpoint's ``stats.json`` and the modes of
:mod:`embodied_mm.model.normalize`.

``normalize`` maps every listed feature present in the batch (the state on the control
loop; also the action chunk and the episode's final state in training batches; the final
state is a state, so it uses the state's stats). ``unnormalize`` maps the model's normalised
action chunk (B, K, D) to robot units, inside the action bounds of bounded modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from embodied_mm.features import FINAL_STATE, FIRST_PHASE_STATE, OBS_STATE, PHASE_END_STATE
from embodied_mm.model.normalize import NORM_MODES, STD_FLOOR_REL, Normalizer
from embodied_mm.processor.core import Resources, Step

# Batch keys normalised with another feature's stats.
STATS_OF = {FINAL_STATE: OBS_STATE, FIRST_PHASE_STATE: OBS_STATE, PHASE_END_STATE: OBS_STATE}


@dataclass
class NormalizeParams:
    modes: dict[str, str]  # feature -> normalisation mode
    dims: dict[str, int]  # feature -> size of its last axis
    std_floor_rel: float = STD_FLOOR_REL

    def __post_init__(self) -> None:
        bad = {k: m for k, m in self.modes.items() if m not in NORM_MODES}
        if bad:
            raise ValueError(f"unknown normalisation modes {bad}; known: {list(NORM_MODES)}")
        missing = sorted(set(self.modes) - set(self.dims))
        if missing:
            raise ValueError(f"dims lacks the size of {missing}")


def _normalizer(params: NormalizeParams, resources: Resources) -> Normalizer:
    if resources.stats is None:
        raise ValueError("needs the checkpoint's normalisation stats")
    return Normalizer(resources.stats, params.modes, params.dims, params.std_floor_rel)


class Normalize(nn.Module, Step):
    name = "normalize"
    stage = "tensor"
    side = "input"
    Params = NormalizeParams

    def __init__(self, params: NormalizeParams, normalizer: Normalizer) -> None:
        super().__init__()
        self.params = params
        self.normalizer = normalizer
        self.keys = [(k, k) for k in params.modes if params.modes[k] != "identity"]
        self.keys += [(k, s) for k, s in STATS_OF.items() if s in params.modes]

    @classmethod
    def from_params(cls, params: NormalizeParams, resources: Resources) -> Normalize:
        return cls(params, _normalizer(params, resources))

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        for key, feature in self.keys:
            if key in batch:
                x = torch.as_tensor(batch[key], dtype=torch.float32)
                batch[key] = self.normalizer.normalize(feature, x)
        return batch


class Unnormalize(nn.Module, Step):
    name = "unnormalize"
    stage = "tensor"
    side = "output"
    Params = NormalizeParams

    def __init__(self, params: NormalizeParams, normalizer: Normalizer) -> None:
        super().__init__()
        self.params = params
        self.normalizer = normalizer

    @classmethod
    def from_params(cls, params: NormalizeParams, resources: Resources) -> Unnormalize:
        return cls(params, _normalizer(params, resources))

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        for feature in self.params.modes:
            if feature in batch:
                batch[feature] = self.normalizer.unnormalize(feature, batch[feature].float())
        return batch
