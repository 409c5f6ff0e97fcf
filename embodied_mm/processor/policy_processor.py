"""The pipeline of a :class:`~embodied_mm.model.modeling_vla.VLAPolicy`: how it is built for a
new policy (or a checkpoint saved before processor files existed), and how PyTorch runs it.

``preprocess``: host steps (numpy or CPU tensors) → tensors on the policy's device → tensor
steps. ``postprocess``: the output steps on the model's normalised actions. The tensor steps
are ``nn.Module`` s the policy owns, so they follow it across devices, and ONNX export traces
them into the graph (:mod:`embodied_mm.export.graph`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from embodied_mm.features import ACTION, OBS_STATE, image_key
from embodied_mm.processor.core import Pipeline, Resources, Step
from embodied_mm.processor.images import CameraPixels, CameraPixelsParams
from embodied_mm.processor.normalize import Normalize, NormalizeParams, Unnormalize
from embodied_mm.processor.observation import ObservationCheck, ObservationCheckParams
from embodied_mm.processor.tokenize import TokenizeTask, TokenizeTaskParams


def policy_pipeline(
    config: Any,
    resources: Resources,
    pad_id: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    state_names: list[str] | None = None,
) -> Pipeline:
    """The pipeline a policy of ``config`` (a built ``PolicyConfig``: its tower's input size
    filled in) was trained with; ``mean``/``std``: its tower family's pixel normalisation."""
    s, d = int(config.state_dim), int(config.action_dim)
    modes = dict(config.norm_modes)
    steps: list[Step] = [
        ObservationCheck(ObservationCheckParams(list(config.cameras), s, state_names=state_names)),
        TokenizeTask(
            TokenizeTaskParams(int(config.max_text_tokens), int(pad_id)), resources.tokenizer
        ),
        CameraPixels(
            CameraPixelsParams(
                list(config.cameras), int(config.vision.image_size), list(mean), list(std)
            )
        ),
    ]
    dims = {k: {OBS_STATE: s, ACTION: d}.get(k, 0) for k in modes}
    norm = NormalizeParams(modes, dims, float(config.std_floor_rel))
    steps.append(Normalize.from_params(norm, resources))
    if ACTION in modes:
        out = NormalizeParams({ACTION: modes[ACTION]}, {ACTION: d}, float(config.std_floor_rel))
        steps.append(Unnormalize.from_params(out, resources))
    return Pipeline(steps)


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)).to(device, non_blocking=True)
    return x  # strings, lists of strings, None


class PolicyProcessor:
    """A :class:`Pipeline` as the PyTorch policy runs it (see the module docstring)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.host_inputs = pipeline.select("input", "host")
        self.tensor_inputs = pipeline.select("input", "tensor")
        self.outputs = pipeline.select("output")
        for s in [*self.tensor_inputs, *self.outputs]:
            if not isinstance(s, nn.Module):
                raise TypeError(f"tensor step {s.name!r} must be a torch module")
        if any(s.stage == "host" for s in self.outputs):
            raise ValueError("host output steps are not supported by the PyTorch policy")
        self.modules = nn.ModuleList([*self.tensor_inputs, *self.outputs])  # type: ignore[list-item]

    def host(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The host steps only (checks, tokenisation): numpy or CPU tensors."""
        return Pipeline.run(self.host_inputs, batch)

    def tensors(self, batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
        """Host-step output → device tensors → the tensor input steps."""
        batch = {k: _to_device(v, device) for k, v in batch.items()}
        return Pipeline.run(self.tensor_inputs, batch)

    def preprocess(self, batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
        return self.tensors(self.host(batch), device)

    def postprocess(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalised actions (B, K, D) → robot units (B, K, D)."""
        return Pipeline.run(self.outputs, {ACTION: actions})[ACTION]

    def reset(self) -> None:
        self.pipeline.reset()

    def step(self, cls: type) -> Any:
        found = next((s for s in self.pipeline.steps if isinstance(s, cls)), None)
        if found is None:
            raise LookupError(f"this policy's pipeline has no {cls.name!r} step")
        return found

    @property
    def cameras(self) -> list[str]:
        return list(self.step(ObservationCheck).params.cameras)

    def image_keys(self) -> list[str]:
        return [image_key(c) for c in self.cameras]


def pixel_size(config: Any) -> int:
    """The input size of the policy's image path: its VLM's, else its vision tower's."""
    vlm = getattr(config, "vlm", None)
    return int(vlm.image_size if vlm is not None else config.vision.image_size)


def mismatches(config: Any, pipeline: Pipeline) -> list[str]:
    """Where a saved pipeline disagrees with the policy config it was saved with (the fields
    both record), as ``"step.param: pipeline value != config value"`` lines."""
    expected: dict[tuple[str, str], Any] = {
        ("observation_check", "cameras"): list(config.cameras),
        ("observation_check", "state_dim"): int(config.state_dim),
        ("tokenize_task", "max_tokens"): int(config.max_text_tokens),
        ("camera_pixels", "cameras"): list(config.cameras),
        ("camera_pixels", "size"): int(pixel_size(config)),
        ("vlm_prompt", "max_tokens"): int(config.max_text_tokens),
        ("normalize", "modes"): dict(config.norm_modes),
        ("normalize", "std_floor_rel"): float(config.std_floor_rel),
    }
    out = []
    for (name, param), want in expected.items():
        step = pipeline.find(name)
        if step is None:
            continue
        got = getattr(step.params, param)
        if got != want:
            out.append(f"{name}.{param}: {got!r} != {want!r}")
    return out
