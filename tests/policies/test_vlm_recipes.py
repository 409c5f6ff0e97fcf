"""The ``vlm-*`` recipes: tiny random VLMs that train here, base sizes naming the real hub
checkpoints, whose recorded architectures are those checkpoints' (their parameter counts)."""

import subprocess
import sys

import pytest
import torch

from embodied_mm.model.vlm_families import (
    BASE_ARCHITECTURES,
    PALIGEMMA_3B,
    QWEN2_5_VL_3B,
    QWEN2_VL_2B,
    SMOLVLM2_500M,
)
from embodied_mm.policies import RECIPES, recipe_config

VLM = [n for n in RECIPES.names() if n.startswith("vlm-")]
# published sizes of the checkpoints (model cards): 507M, 2.92B, 2.21B, 3.75B parameters
PUBLISHED = {SMOLVLM2_500M: 507e6, PALIGEMMA_3B: 2.92e9, QWEN2_VL_2B: 2.21e9, QWEN2_5_VL_3B: 3.75e9}


def test_one_chunk_and_one_flow_recipe_per_family():
    families = ("paligemma", "qwen25vl", "qwen2vl", "smolvlm")
    expected = [f"vlm-{f}-{h}" for f in families for h in ("chunk", "flow")]
    assert expected == VLM


@pytest.mark.parametrize("name", VLM)
def test_base_sizes_name_hub_checkpoints_and_random_weights_their_architectures(name):
    cfg = recipe_config(name, size="base")
    assert cfg.vlm.pretrained in BASE_ARCHITECTURES and cfg.vlm.hf_config is None
    assert cfg.vlm.freeze_vision and cfg.vlm.lora_rank > 0
    assert cfg.vlm.keep_layers == (16 if "smolvlm" in name else None)  # SmolVLA's 16 of 32
    random = recipe_config(name, size="base", random_weights=True)
    assert random.vlm.pretrained is None
    assert random.vlm.hf_config == BASE_ARCHITECTURES[cfg.vlm.pretrained]
    assert (
        random.vlm.lora_rank == cfg.vlm.lora_rank and random.vlm.keep_layers == cfg.vlm.keep_layers
    )


@pytest.mark.parametrize("hub", sorted(PUBLISHED))
def test_recorded_architectures_have_the_checkpoints_parameter_counts(hub):
    from transformers import AutoConfig, AutoModelForImageTextToText

    with torch.device("meta"):  # the shapes alone, no memory
        model = AutoModelForImageTextToText.from_config(
            AutoConfig.for_model(**BASE_ARCHITECTURES[hub])
        )
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(PUBLISHED[hub], rel=0.02), f"{hub}: {count:,}"


def test_cli_lists_the_vlm_recipes():
    out = subprocess.run(
        [sys.executable, "-m", "embodied_mm.cli.main", "policies"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    for name in VLM:
        assert name in out
    assert "HuggingFaceTB/SmolVLM2-500M-Video-Instruct" in out and PALIGEMMA_3B in out
