"""Tiny ``vlm`` policies (random SmolVLM / PaliGemma / Qwen2-VL built from configs) and a
tiny VLM saved as a hub checkpoint directory (model, tokenizer, image processor)."""

from __future__ import annotations

import copy
from pathlib import Path

from embodied_mm.model.configuration_vla import PolicyConfig
from embodied_mm.model.encoders import ProprioConfig
from embodied_mm.model.heads import HeadConfig
from embodied_mm.model.vlm import VLMConfig, add_prompt_tokens
from embodied_mm.model.vlm_families import VLM_FAMILIES
from tests.model.helpers import ACTION_DIM, CHUNK, STATE_DIM

VLM_KINDS = ["smolvlm", "paligemma", "qwen2_vl", "qwen2_5_vl"]
IMAGE = 32  # camera frames and the tiny VLMs' input size


def tiny_vlm_config(family: str = "smolvlm", head: str = "chunk", **vlm_fields) -> PolicyConfig:
    """A policy on a tiny random VLM of ``family`` (two cameras of 32×32, state 5, action 3)."""
    vlm = VLMConfig(family=family, image_size=IMAGE,
                    hf_config=copy.deepcopy(VLM_FAMILIES.get(family).tiny), **vlm_fields)  # fmt: skip
    return PolicyConfig(
        head=HeadConfig(kind=head, expert_hidden=32, expert_layers=1, expert_heads=2,
                        flow_steps=5, num_bins=32),
        cameras=["front", "wrist"], image_size=IMAGE, state_dim=STATE_DIM,
        action_dim=ACTION_DIM, chunk_size=CHUNK, proprio=ProprioConfig(hidden_size=32), vlm=vlm,
    )  # fmt: skip


def tiny_tokenizer(family: str):
    from transformers import AutoTokenizer

    from embodied_mm.model.pretrained import shipped_tokenizer_dir

    return add_prompt_tokens(AutoTokenizer.from_pretrained(str(shipped_tokenizer_dir())), family)


def image_processor(family: str):
    """The family's own image processor class, sized for the tiny models."""
    import transformers

    if family.startswith("qwen"):
        return transformers.Qwen2VLImageProcessorPil(
            min_pixels=IMAGE * IMAGE, max_pixels=IMAGE * IMAGE, patch_size=8, merge_size=2,
            temporal_patch_size=2,
        )  # fmt: skip
    if family == "smolvlm":
        return transformers.SmolVLMImageProcessorPil(
            do_image_splitting=False, size={"longest_edge": IMAGE},
            max_image_size={"longest_edge": IMAGE},
        )  # fmt: skip
    proc = transformers.SiglipImageProcessorPil(size={"height": IMAGE, "width": IMAGE})
    proc.image_seq_length = 16
    return proc


def save_tiny_vlm(family: str, directory: Path, seed: int = 0):
    """A random tiny VLM written as a hub checkpoint is: ``save_pretrained`` of the model, its
    tokenizer (with the family's prompt tokens) and its image processor. Returns the model."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer(family)
    fam = VLM_FAMILIES.get(family)
    data = copy.deepcopy(fam.tiny)
    data["image_token_id"] = tokenizer.convert_tokens_to_ids(fam.image_token)
    data["text_config"]["vocab_size"] = len(tokenizer)
    model = AutoModelForImageTextToText.from_config(AutoConfig.for_model(**data))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    image_processor(family).save_pretrained(directory)
    return model
