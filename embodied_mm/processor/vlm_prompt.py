"""``vlm_prompt``: an instruction in a pretrained VLM's own prompt format (host stage).

The ids of the family's chat format before the instruction (with one run of image
placeholder tokens per camera) and after it are fixed per policy, computed once from the
model's tokenizer when the policy is built (:mod:`embodied_mm.model.vlm_families`) and saved
here as ids, so neither the PyTorch nor the onnxruntime runtime needs the model's processor:
each call tokenises the instruction alone (cached per episode, as ``tokenize_task``) and
wraps it. Image placeholder ids the instruction itself might spell are dropped, so that
every prompt holds exactly the policy's image tokens.

The pipeline of a ``vlm`` policy is :func:`vlm_pipeline`: ``observation_check``,
``vlm_prompt``, ``camera_pixels`` (at the VLM's image size, with its normalisation),
``normalize`` / ``unnormalize``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from embodied_mm.processor.core import Pipeline, Resources
from embodied_mm.processor.images import CameraPixels, CameraPixelsParams
from embodied_mm.processor.policy_processor import policy_pipeline
from embodied_mm.processor.tokenize import TokenizeTask


@dataclass
class VLMPromptParams:
    max_tokens: int  # longer instructions are cut (before wrapping)
    pad_id: int
    image_token_id: int
    prefix_ids: list[int] = field(default_factory=list)  # the format before the instruction
    suffix_ids: list[int] = field(default_factory=list)  # ... and after it

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1; got {self.max_tokens}")


class VLMPrompt(TokenizeTask):
    """``tokenize_task`` whose ids are wrapped in the VLM's prompt (see the module docstring)."""

    name = "vlm_prompt"
    Params = VLMPromptParams  # type: ignore[assignment]

    params: VLMPromptParams  # type: ignore[assignment]

    @classmethod
    def from_params(cls, params: VLMPromptParams, resources: Resources) -> VLMPrompt:  # type: ignore[override]
        return cls(params, resources.tokenizer)  # type: ignore[arg-type]

    @property
    def max_length(self) -> int:
        p = self.params
        return len(p.prefix_ids) + p.max_tokens + len(p.suffix_ids)

    def wrap(self, ids: list[int]) -> list[int]:
        p = self.params
        return [*p.prefix_ids, *(i for i in ids if i != p.image_token_id), *p.suffix_ids]


def vlm_pipeline(
    config: Any,
    resources: Resources,
    prompt: VLMPromptParams,
    state_names: list[str] | None = None,
) -> Pipeline:
    """The pipeline of a ``vlm`` policy of ``config`` (a built ``PolicyConfig``: its
    ``vlm`` image size and pixel statistics filled in): :func:`policy_pipeline`'s, with the
    VLM's prompt and pixels."""
    vlm = config.vlm
    pixels = CameraPixels(
        CameraPixelsParams(list(config.cameras), int(vlm.image_size), list(vlm.image_mean),
                           list(vlm.image_std))
    )  # fmt: skip
    own = {"tokenize_task": VLMPrompt(prompt, resources.tokenizer), "camera_pixels": pixels}
    base = policy_pipeline(config, resources, prompt.pad_id, vlm.image_mean, vlm.image_std,
                           state_names)  # fmt: skip
    return Pipeline([own.get(s.name, s) for s in base.steps])
