"""The pretrained vision-language model families a ``vlm`` policy starts from: how each one
encodes camera images (its own vision tower and projector), lays out its prompt (its own
special tokens and chat format) and which architectures its tiny and base recipes build.

Each family is one ``transformers`` image-text-to-text model class family:

- ``smolvlm`` / ``idefics3``: SigLIP + pixel-shuffle connector + Llama-style LM (SmolVLM2,
  the start of SmolVLA). One global image per camera, no tiling (as SmolVLA).
- ``paligemma``: SigLIP + linear projector + Gemma (the start of π0 / π0.5).
- ``qwen2_vl`` / ``qwen2_5_vl``: Qwen2-VL's (Qwen2.5-VL's windowed) ViT with its 2×2 patch
  merger + Qwen2 LM with M-RoPE; images at a fixed size (the model takes any; a policy needs
  one token count).

The base architectures below are the ``config.json`` of the named hub checkpoints (the
fields that shape the network), so ``--random-weights`` builds them without a download.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from embodied_mm.registry import Registry

SIGLIP_MEAN = (0.5, 0.5, 0.5)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

SMOLVLM2_500M = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
PALIGEMMA_3B = "google/paligemma-3b-pt-224"
QWEN2_VL_2B = "Qwen/Qwen2-VL-2B-Instruct"
QWEN2_5_VL_3B = "Qwen/Qwen2.5-VL-3B-Instruct"


@dataclass(frozen=True)
class VLMFamily:
    """How one family of VLMs is driven (see the module docstring)."""

    model_types: tuple[str, ...]  # transformers model_type values this family accepts
    image_token: str  # the placeholder each image feature replaces
    special_tokens: tuple[str, ...]  # tokens the prompt format needs (added to tiny tokenizers)
    mean: tuple[float, float, float]  # pixel normalisation the family was trained with
    std: tuple[float, float, float]
    # (tokenizer, image tokens per camera, cameras) → (text before the instruction, after it)
    prompt: Callable[[Any, int, int], tuple[str, str]]
    # (the transformers VLM, normalised pixels (N, 3, S, S)) → image embeddings (N, T, H)
    encode: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    # (the transformers config, image size) → image tokens per camera
    tokens_per_image: Callable[[Any, int], int]
    tiny: dict[str, Any]  # a CPU-sized architecture (random weights)
    default_image_size: int | None = None  # for families whose vision config has none
    mrope: bool = False  # Qwen2-VL's 3-D rotary positions (see model/vlm.py)


# --- SmolVLM / Idefics3 ---------------------------------------------------------------------------


def _smolvlm_prompt(tokenizer: Any, n: int, cameras: int) -> tuple[str, str]:
    # SmolVLM's chat format, one un-tiled image per camera (processing_smolvlm's global image)
    image = "<fake_token_around_image><global-img>" + "<image>" * n + "<fake_token_around_image>"
    return "<|im_start|>User:" + image * cameras, "<end_of_utterance>\nAssistant:"


def _smolvlm_encode(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    inner = model.model
    hidden = inner.vision_model(pixel_values=pixels.to(inner.dtype)).last_hidden_state
    return inner.connector(hidden)  # (N, T, H): pixel shuffle + projection


def _smolvlm_tokens(config: Any, size: int) -> int:
    grid = size // config.vision_config.patch_size
    return grid * grid // config.scale_factor**2


def _smolvlm_tiny(model_type: str) -> dict[str, Any]:
    return dict(
        model_type=model_type, scale_factor=2,
        vision_config=dict(model_type=f"{model_type}_vision", hidden_size=32,
                           intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        text_config=dict(model_type="llama", vocab_size=64, hidden_size=64,
                         intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=1024),
        tie_word_embeddings=False,
    )  # fmt: skip


# --- PaliGemma ----------------------------------------------------------------------------------


def _paligemma_prompt(tokenizer: Any, n: int, cameras: int) -> tuple[str, str]:
    # processing_paligemma.build_string_from_input: images, BOS, prompt, newline
    return "<image>" * (n * cameras) + str(tokenizer.bos_token), "\n"


def _paligemma_encode(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    inner = model.model
    hidden = inner.vision_tower(pixels.to(inner.dtype)).last_hidden_state
    return inner.multi_modal_projector(hidden)  # (N, T, H)


def _paligemma_tokens(config: Any, size: int) -> int:
    return (size // config.vision_config.patch_size) ** 2


PALIGEMMA_TINY: dict[str, Any] = dict(
    model_type="paligemma", projection_dim=64,
    vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
                       num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8,
                       projection_dim=64),
    text_config=dict(model_type="gemma", vocab_size=64, hidden_size=64, intermediate_size=128,
                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                     head_dim=16, max_position_embeddings=1024),
)  # fmt: skip


# --- Qwen2-VL -----------------------------------------------------------------------------------


def _qwen2_vl_prompt(tokenizer: Any, n: int, cameras: int) -> tuple[str, str]:
    # Qwen2-VL's chat template with its default system message, one image per camera
    image = "<|vision_start|>" + "<|image_pad|>" * n + "<|vision_end|>"
    system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    return system + "<|im_start|>user\n" + image * cameras, "<|im_end|>\n<|im_start|>assistant\n"


def qwen2_vl_patches(pixels: torch.Tensor, patch: int, merge: int, temporal: int) -> torch.Tensor:
    """Normalised pixels (N, 3, S, S) → the flat patches Qwen2-VL's vision tower reads
    (N·g·g, 3·temporal·patch²), g = S / patch, in its image processor's order (each still
    image repeated ``temporal`` times; patches grouped by ``merge``×``merge`` blocks)."""
    n, c, s, _ = pixels.shape
    g = s // patch
    x = pixels.unsqueeze(1).expand(n, temporal, c, s, s)  # (N, Tp, 3, S, S)
    x = x.reshape(n, temporal, c, g // merge, merge, patch, g // merge, merge, patch)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (N, gh, gw, mh, mw, 3, Tp, p, p)
    return x.reshape(n * g * g, c * temporal * patch * patch)


def _qwen2_vl_encode(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    visual = model.model.visual
    vc = visual.config
    n, s = pixels.shape[0], pixels.shape[-1]
    g = s // vc.patch_size
    flat = qwen2_vl_patches(pixels, vc.patch_size, vc.spatial_merge_size, vc.temporal_patch_size)
    grid = torch.tensor([[1, g, g]], device=pixels.device).expand(n, 3)  # (N, 3): t, h, w
    merged = visual(flat.to(visual.dtype), grid_thw=grid).pooler_output  # (N·T, H)
    return merged.view(n, -1, merged.shape[-1])  # (N, T, H)


def _qwen2_vl_tokens(config: Any, size: int) -> int:
    vc = config.vision_config
    return (size // vc.patch_size) ** 2 // vc.spatial_merge_size**2


def _qwen_vl_tiny_text(model_type: str) -> dict[str, Any]:
    """The tiny random text tower both Qwen VL families share (M-RoPE, no special ids)."""
    return dict(model_type=model_type, vocab_size=64, hidden_size=64, intermediate_size=128,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=1024, bos_token_id=None, eos_token_id=None,
                rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})  # fmt: skip


QWEN2_VL_TINY: dict[str, Any] = dict(
    model_type="qwen2_vl",
    vision_config=dict(model_type="qwen2_vl", depth=1, embed_dim=32, hidden_size=64, num_heads=2,
                       mlp_ratio=2, patch_size=8, spatial_merge_size=2, temporal_patch_size=2),
    text_config=_qwen_vl_tiny_text("qwen2_vl_text"),
)  # fmt: skip


QWEN2_5_VL_TINY: dict[str, Any] = dict(
    model_type="qwen2_5_vl",
    vision_config=dict(model_type="qwen2_5_vl", depth=2, hidden_size=32, intermediate_size=64,
                       num_heads=2, out_hidden_size=64, patch_size=8, spatial_merge_size=2,
                       temporal_patch_size=2, window_size=16, fullatt_block_indexes=[1]),
    text_config=_qwen_vl_tiny_text("qwen2_5_vl_text"),
)  # fmt: skip


VLM_FAMILIES: Registry[VLMFamily] = Registry("VLM family")
_SMOL_TOKENS = ("<fake_token_around_image>", "<global-img>", "<image>", "<|im_start|>",
                "<end_of_utterance>")  # fmt: skip
for _name in ("smolvlm", "idefics3"):
    VLM_FAMILIES.register(
        _name,
        VLMFamily((_name,), "<image>", _SMOL_TOKENS, SIGLIP_MEAN, SIGLIP_MEAN, _smolvlm_prompt,
                  _smolvlm_encode, _smolvlm_tokens, _smolvlm_tiny(_name)),
    )  # fmt: skip
VLM_FAMILIES.register(
    "paligemma",
    VLMFamily(("paligemma",), "<image>", ("<image>",), SIGLIP_MEAN, SIGLIP_MEAN,
              _paligemma_prompt, _paligemma_encode, _paligemma_tokens, PALIGEMMA_TINY),
)  # fmt: skip
VLM_FAMILIES.register(
    "qwen2_vl",
    VLMFamily(("qwen2_vl",), "<|image_pad|>",
              ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>"),
              CLIP_MEAN, CLIP_STD, _qwen2_vl_prompt, _qwen2_vl_encode, _qwen2_vl_tokens,
              QWEN2_VL_TINY, default_image_size=224, mrope=True),
)  # fmt: skip
VLM_FAMILIES.register(
    "qwen2_5_vl",
    VLMFamily(("qwen2_5_vl",), "<|image_pad|>", VLM_FAMILIES.get("qwen2_vl").special_tokens,
              CLIP_MEAN, CLIP_STD, _qwen2_vl_prompt, _qwen2_vl_encode, _qwen2_vl_tokens,
              QWEN2_5_VL_TINY, default_image_size=224, mrope=True),
)  # fmt: skip


# Architectures of the base checkpoints (from their config.json): what --random-weights builds
# (the image token's id then comes from the tokenizer the policy uses).
BASE_ARCHITECTURES: dict[str, dict[str, Any]] = {
    SMOLVLM2_500M: dict(
        model_type="smolvlm", scale_factor=4,
        vision_config=dict(model_type="smolvlm_vision", hidden_size=768, intermediate_size=3072,
                           num_hidden_layers=12, num_attention_heads=12, image_size=512,
                           patch_size=16),
        text_config=dict(model_type="llama", vocab_size=49280, hidden_size=960,
                         intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                         num_key_value_heads=5, max_position_embeddings=8192,
                         rope_theta=100000.0, rms_norm_eps=1e-5),
        tie_word_embeddings=False,
    ),
    PALIGEMMA_3B: dict(
        model_type="paligemma", projection_dim=2048,
        vision_config=dict(model_type="siglip_vision_model", hidden_size=1152,
                           intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                           image_size=224, patch_size=14, projection_dim=2048),
        text_config=dict(model_type="gemma", vocab_size=257216, hidden_size=2048,
                         intermediate_size=16384, num_hidden_layers=18, num_attention_heads=8,
                         num_key_value_heads=1, head_dim=256, max_position_embeddings=8192),
    ),
    QWEN2_VL_2B: dict(
        model_type="qwen2_vl",
        vision_config=dict(model_type="qwen2_vl", depth=32, embed_dim=1280, hidden_size=1536,
                           num_heads=16, mlp_ratio=4, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        text_config=dict(model_type="qwen2_vl_text", vocab_size=151936, hidden_size=1536,
                         intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, max_position_embeddings=32768,
                         rope_theta=1000000.0, rms_norm_eps=1e-6,
                         rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
        tie_word_embeddings=True,
    ),
    QWEN2_5_VL_3B: dict(
        model_type="qwen2_5_vl",
        vision_config=dict(model_type="qwen2_5_vl", depth=32, hidden_size=1280,
                           intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           window_size=112, fullatt_block_indexes=[7, 15, 23, 31]),
        text_config=dict(model_type="qwen2_5_vl_text", vocab_size=151936, hidden_size=2048,
                         intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                         num_key_value_heads=2, max_position_embeddings=128000,
                         rope_theta=1000000.0, rms_norm_eps=1e-6,
                         rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
        tie_word_embeddings=True,
    ),
}  # fmt: skip
