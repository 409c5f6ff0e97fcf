"""Named recipes: listing, unknown names, tiny sizes on our sim's shapes, base and pretrained paths."""

import subprocess
import sys

import pytest
import torch

from embodied_mm.features import image_key
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.model.pretrained import shipped_tokenizer_dir
from embodied_mm.policies import RECIPES, make_policy, recipe_config
from embodied_mm.policies.recipes import HUB_ARCHITECTURES, QWEN25_05B, SIGLIP_BASE, SMOLLM2_135M


def sim_obs(batch: int = 2) -> dict:
    obs = {
        image_key(cam): torch.randint(0, 256, (batch, 128, 128, 3), dtype=torch.uint8)
        for cam in ("front", "wrist")
    }
    obs["observation.state"] = torch.randn(batch, 15)
    obs["task"] = ["pick up the red cube"] * batch
    return obs


# the recipes of a vision tower + causal LM (the vlm-* ones: tests/policies/test_vlm_recipes.py)
VLA = [n for n in RECIPES.names() if n.startswith("vla-")]


def test_the_three_recipes_are_registered():
    assert VLA == ["vla-chunk", "vla-discrete", "vla-flow"]


def test_unknown_recipe_and_size_fail_with_known_names():
    with pytest.raises(KeyError, match="known: vla-chunk, vla-discrete, vla-flow, vlm-"):
        make_policy("vla-diffusion")
    with pytest.raises(ValueError, match="size: expected one of tiny, base, got 'huge'"):
        recipe_config("vla-chunk", size="huge")
    with pytest.raises(ValueError, match=r"chunk: unknown field \(did you mean chunk_size\?\)"):
        recipe_config("vla-chunk", chunk=4)
    with pytest.raises(ValueError, match=r"backbone.layers: unknown field .*num_layers"):
        recipe_config("vla-chunk", backbone={"layers": 4})


@pytest.mark.parametrize("name", RECIPES.names())
def test_tiny_recipe_runs_on_our_sim_shapes(name):
    torch.manual_seed(0)
    policy = make_policy(name, device="cpu").eval()
    assert policy.config.head.kind == RECIPES.get(name).head
    chunk = policy.predict_chunk(sim_obs())
    assert chunk.shape == (2, 8, 7)
    assert (chunk.abs() <= 1.0 + 1e-6).all()  # unit stats: bounds are [-1, 1]
    batch = {**sim_obs(), "action": torch.rand(2, 8, 7) * 2 - 1}
    loss, _ = policy.compute_loss(batch)
    loss.backward()


def test_overrides_reach_nested_configs():
    policy = make_policy(
        "vla-chunk", cameras=["top"], state_dim=6, action_dim=4, chunk_size=3,
        backbone={"family": "llama"}, projector={"kind": "resampler", "num_queries": 3, "num_heads": 2},
        device="cpu",
    )  # fmt: skip
    assert policy.backbone.lm.config.model_type == "llama"
    obs = {
        image_key("top"): torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8),
        "observation.state": torch.zeros(1, 6),
        "task": ["reach"],
    }
    assert policy.predict_chunk(obs).shape == (1, 3, 4)


@pytest.mark.parametrize("name", VLA)
def test_base_sizes_name_hub_checkpoints(name):
    cfg = recipe_config(name, size="base")
    assert cfg.vision.pretrained == SIGLIP_BASE and cfg.vision.freeze
    assert cfg.backbone.pretrained in (SMOLLM2_135M, QWEN25_05B) and cfg.backbone.lora_rank > 0
    random = recipe_config(name, size="base", random_weights=True)
    assert random.vision.pretrained is None and random.backbone.pretrained is None
    assert random.vision.hidden_size == HUB_ARCHITECTURES[SIGLIP_BASE].hidden_size
    assert random.backbone.lora_rank == cfg.backbone.lora_rank  # training options survive


def test_pretrained_path_builds_a_recipe_from_local_checkpoints(tmp_path):
    """A tiny HF vision tower and causal LM saved with save_pretrained stand in for the hub."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    vision = AutoModel.from_config(
        AutoConfig.for_model(
            "siglip_vision_model", image_size=32, patch_size=16, hidden_size=32,
            num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        )
    )  # fmt: skip
    vision.save_pretrained(tmp_path / "vision")
    tokenizer = AutoTokenizer.from_pretrained(str(shipped_tokenizer_dir()))
    lm = AutoModelForCausalLM.from_config(
        AutoConfig.for_model(
            "llama", vocab_size=len(tokenizer) + 11, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
        )
    )  # fmt: skip
    lm.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")  # the backbone's own tokenizer

    for name in VLA:
        policy = make_policy(
            name, size="base", device="cpu",
            vision={"pretrained": str(tmp_path / "vision")},
            backbone={"pretrained": str(tmp_path / "lm")},
            projector={"num_queries": 4, "num_heads": 4},
            head={"expert_hidden": 32, "expert_layers": 1, "expert_heads": 2},
        ).eval()  # fmt: skip
        # The weights are the saved ones (LoRA adapters aside) and the tower stays frozen.
        tower = policy.vision.towers[0].model
        for (n, p), q in zip(tower.named_parameters(), vision.parameters(), strict=True):
            assert torch.equal(p, q), n
            assert not p.requires_grad
        q_proj = policy.backbone.lm.model.layers[0].self_attn.q_proj
        assert torch.equal(q_proj.base_layer.weight, lm.model.layers[0].self_attn.q_proj.weight)
        if name == "vla-discrete":  # action bins go after the (padded) pretrained vocab
            assert policy.config.backbone.extra_token_offset == len(tokenizer) + 11
        assert policy.predict_chunk(sim_obs(1)).shape == (1, 8, 7)
        # And the built policy saves and reloads with no access to the original paths.
        policy.save_pretrained(tmp_path / f"saved-{name}")
        reloaded = VLAPolicy.from_pretrained(tmp_path / f"saved-{name}", device="cpu").eval()
        obs = sim_obs(1)
        torch.testing.assert_close(reloaded.predict_chunk(obs), policy.predict_chunk(obs))


def test_cli_lists_recipes():
    out = subprocess.run(
        [sys.executable, "-m", "embodied_mm.cli.main", "policies"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    for name in RECIPES.names():
        assert name in out
    assert "SmolLM2-135M" in out
