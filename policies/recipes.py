"""Named policy recipes: ``vla-discrete``, ``vla-chunk``, ``vla-flow`` (a vision tower and a
causal LM joined by a learned projector) and ``vlm-<family>-<head>`` (one pretrained
vision-language model: SmolVLM2, PaliGemma, Qwen2-VL; :mod:`embodied_mm.model.vlm`), each in
two sizes.

- ``tiny``: fresh SigLIP-style tower and Qwen2-style backbone (or a tiny random VLM of the
  family) small enough to train on two CPU cores in minutes; uses the shipped offline
  tokenizer (plus the VLM family's prompt tokens).
- ``base``: real hub checkpoints (SigLIP-base tower, SmolLM2-135M / Qwen2.5-0.5B backbone;
  SmolVLM2-500M, PaliGemma-3B, Qwen2-VL-2B) with a frozen vision encoder and LoRA on the
  LM, for users who have the weights (SmolVLM2 keeps its first 16 LM layers, as SmolVLA).
  With ``random_weights=True`` the same architectures are built from their configs instead
  (speed benchmarks on machines without the weights).

Defaults match our simulator (cameras ``front`` and ``wrist`` at 128×128, state 15, action 7,
chunk 8). A recipe is a preset :class:`~embodied_mm.model.configuration_vla.PolicyConfig`;
every field can then be overridden, through the same typed and validated decoder as flags,
YAML files and checkpoints (:func:`embodied_mm.model.config_io.decode_config`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from embodied_mm.model.backbone import BackboneConfig
from embodied_mm.model.config_io import ConfigError, config_to_dict, decode_config, merge
from embodied_mm.model.configuration_vla import PolicyConfig
from embodied_mm.model.encoders import VisionConfig
from embodied_mm.model.heads import HeadConfig
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.model.normalize import Stats
from embodied_mm.model.projectors import ProjectorConfig
from embodied_mm.model.vlm import VLMConfig
from embodied_mm.model.vlm_families import (
    BASE_ARCHITECTURES,
    PALIGEMMA_3B,
    QWEN2_5_VL_3B,
    QWEN2_VL_2B,
    SMOLVLM2_500M,
    VLM_FAMILIES,
)
from embodied_mm.registry import Registry

SIZES = ("tiny", "base")

SIGLIP_BASE = "google/siglip-base-patch16-224"
SMOLLM2_135M = "HuggingFaceTB/SmolLM2-135M"
QWEN25_05B = "Qwen/Qwen2.5-0.5B"

# Architectures of the hub checkpoints above (from their config.json), so random-weight
# "base" policies can be built with no download.
HUB_ARCHITECTURES: dict[str, VisionConfig | BackboneConfig] = {
    SIGLIP_BASE: VisionConfig(
        family="siglip", image_size=224, patch_size=16, hidden_size=768, num_layers=12,
        num_heads=12, intermediate_size=3072,
    ),
    SMOLLM2_135M: BackboneConfig(
        family="llama", hidden_size=576, num_layers=30, num_heads=9, num_kv_heads=3,
        intermediate_size=1536, max_positions=8192,
    ),
    QWEN25_05B: BackboneConfig(
        family="qwen2", hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2,
        intermediate_size=4864, max_positions=32768,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    head: str
    base_backbone: str  # hub checkpoint of the base size
    head_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    vlm_family: str | None = None  # a VLM_FAMILIES name: the base_backbone is that VLM
    base_vlm_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def config(self, size: str = "tiny") -> PolicyConfig:
        if size not in SIZES:
            raise ConfigError(("size",), f"expected one of {', '.join(SIZES)}, got {size!r}")
        head = HeadConfig(kind=self.head, **self.head_options)
        if self.vlm_family is not None:
            return self._vlm_config(size, head)
        if size == "tiny":
            return PolicyConfig(
                head=head,
                vision=VisionConfig(family="siglip", image_size=64, patch_size=16, hidden_size=64,
                                    num_layers=2, num_heads=2, intermediate_size=128),
                projector=ProjectorConfig(kind="mlp"),
                backbone=BackboneConfig(family="qwen2", hidden_size=128, num_layers=2, num_heads=4,
                                        num_kv_heads=2, intermediate_size=256),
            )  # fmt: skip
        return PolicyConfig(
            head=dataclasses.replace(head, expert_hidden=256, expert_layers=4, expert_heads=8),
            vision=VisionConfig(family="siglip", pretrained=SIGLIP_BASE, freeze=True),
            projector=ProjectorConfig(kind="resampler", num_queries=64, num_heads=8),
            backbone=BackboneConfig(pretrained=self.base_backbone, lora_rank=16, lora_alpha=32),
            max_text_tokens=48,
        )

    def _vlm_config(self, size: str, head: HeadConfig) -> PolicyConfig:
        assert self.vlm_family is not None
        if size == "tiny":
            # the family's tiny architecture at 64 px in 16 px patches (the token count of its
            # 32 px / 8 px form): half the sim's 128 px frames, as the vla tiny recipes take
            tiny = copy.deepcopy(VLM_FAMILIES.get(self.vlm_family).tiny)
            vision = tiny["vision_config"]
            vision["patch_size"] = 16
            for key in ("image_size", "window_size"):  # (Qwen2.5-VL's window: in pixels)
                if key in vision:
                    vision[key] *= 2
            return PolicyConfig(
                head=dataclasses.replace(head, expert_hidden=64),
                vlm=VLMConfig(family=self.vlm_family, image_size=64, hf_config=tiny),
            )  # fmt: skip
        return PolicyConfig(
            head=dataclasses.replace(head, expert_hidden=256, expert_layers=4, expert_heads=8),
            vlm=VLMConfig(family=self.vlm_family, pretrained=self.base_backbone,
                          freeze_vision=True, lora_rank=16, lora_alpha=32,
                          **self.base_vlm_options),
            max_text_tokens=48,
        )  # fmt: skip


RECIPES: Registry[Recipe] = Registry("policy recipe")
for _recipe in (
    Recipe(
        "vla-discrete",
        "RT-2/OpenVLA: 256 action bins per dim as reserved vocab tokens, autoregressive with KV cache",
        "discrete",
        SMOLLM2_135M,
    ),
    Recipe(
        "vla-chunk",
        "OpenVLA-OFT: K×D learned action queries decoded in one forward pass, L1 loss",
        "chunk",
        SMOLLM2_135M,
    ),
    Recipe(
        "vla-flow",
        "π0: flow-matching action expert on the backbone's hidden states, 10 Euler steps",
        "flow",
        QWEN25_05B,
    ),
):
    RECIPES.register(_recipe.name, _recipe)

_VLM_BASES = {"smolvlm": (SMOLVLM2_500M, {"keep_layers": 16}), "paligemma": (PALIGEMMA_3B, {}),
              "qwen2vl": (QWEN2_VL_2B, {}), "qwen25vl": (QWEN2_5_VL_3B, {})}  # fmt: skip
_FAMILY_OF = {"qwen2vl": "qwen2_vl", "qwen25vl": "qwen2_5_vl"}
for _short, (_hub, _options) in _VLM_BASES.items():
    _family = _FAMILY_OF.get(_short, _short)
    for _head, _what in (("chunk", "K×D action queries on its hidden states, one pass, L1"),
                         ("flow", "flow-matching action expert on its hidden states")):  # fmt: skip
        RECIPES.register(
            f"vlm-{_short}-{_head}",
            Recipe(f"vlm-{_short}-{_head}", f"pretrained {_hub.split('/')[1]} as encoder, "
                   f"projector and LLM; {_what}", _head, _hub, vlm_family=_family,
                   base_vlm_options=_options),
        )  # fmt: skip


def _random_weights(cfg: PolicyConfig) -> PolicyConfig:
    """Swap hub checkpoints for their architectures, built fresh (no download); a VLM keeps
    its training options (frozen encoder, LoRA, kept layers)."""
    changes: dict[str, Any] = {}
    vlm = cfg.vlm
    if vlm is not None and vlm.pretrained is not None and vlm.hf_config is None:
        if vlm.pretrained not in BASE_ARCHITECTURES:
            raise ValueError(
                f"no known architecture for {vlm.pretrained!r}; known: {sorted(BASE_ARCHITECTURES)}"
            )
        arch = copy.deepcopy(BASE_ARCHITECTURES[vlm.pretrained])
        changes["vlm"] = dataclasses.replace(vlm, pretrained=None, hf_config=arch)
    for key in ("vision", "backbone"):
        part = getattr(cfg, key)
        if part.pretrained is None:
            continue
        if part.pretrained not in HUB_ARCHITECTURES:
            raise ValueError(
                f"no known architecture for {part.pretrained!r}; known: {sorted(HUB_ARCHITECTURES)}"
            )
        arch = HUB_ARCHITECTURES[part.pretrained]
        keep = {"freeze", "trainable", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets",
                "gradient_checkpointing"}  # fmt: skip
        kept = {k: getattr(part, k) for k in keep if hasattr(part, k)}
        changes[key] = dataclasses.replace(arch, **kept)
    return dataclasses.replace(cfg, **changes)


def recipe_config(
    recipe: str, size: str = "tiny", random_weights: bool = False, **overrides: Any
) -> PolicyConfig:
    """The :class:`PolicyConfig` of a named recipe, with ``overrides`` applied field by field.

    ``overrides`` are PolicyConfig fields; nested configs take dicts of their fields, merged
    into the preset's (``backbone={"family": "llama"}`` keeps the other backbone fields). They
    are type-checked and validated like a YAML file: a wrong one raises
    :class:`~embodied_mm.model.config_io.ConfigError` naming it.
    """
    cfg = RECIPES.get(recipe).config(size)
    if overrides:
        cfg = decode_config(PolicyConfig, merge(config_to_dict(cfg), overrides),
                            source=f"{recipe} overrides")  # fmt: skip
    return _random_weights(cfg) if random_weights else cfg


def make_policy(
    recipe: str,
    size: str = "tiny",
    stats: Stats | None = None,
    random_weights: bool = False,
    device: str | None = None,
    **overrides: Any,
) -> VLAPolicy:
    """Build a policy by recipe name.

    ``overrides`` set :class:`PolicyConfig` fields; nested configs take dicts, e.g.
    ``make_policy("vla-chunk", chunk_size=4, backbone={"family": "llama"})``.
    """
    return VLAPolicy(recipe_config(recipe, size, random_weights, **overrides), stats, device=device)
