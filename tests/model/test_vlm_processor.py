"""A ``vlm`` policy feeds its VLM as the model's own processor and forward do: the same
prompt ids, the same pixels, the same hidden states (tiny random VLMs)."""

import numpy as np
import pytest
import torch

from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.model.vlm_families import qwen2_vl_patches
from embodied_mm.processor.tokenize import TOKENS, TOKENS_MASK
from tests.model.helpers import make_batch, obs_only, tiny_stats
from tests.model.vlm_helpers import IMAGE, image_processor, tiny_vlm_config

TASK = "pick the red cube"


def policy_of(family: str) -> VLAPolicy:
    torch.manual_seed(0)
    return VLAPolicy(tiny_vlm_config(family), tiny_stats(), device="cpu").eval()


def frames(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (IMAGE, IMAGE, 3), dtype=np.uint8) for _ in range(2)]


def our_inputs(policy: VLAPolicy, images: list[np.ndarray]) -> dict:
    obs = {
        "observation.images.front": torch.from_numpy(images[0])[None],
        "observation.images.wrist": torch.from_numpy(images[1])[None],
        "observation.state": torch.zeros(1, 5),
        "task": [TASK],
    }
    return policy.preprocess(obs)


def test_paligemma_prompt_and_pixels_are_its_processors():
    from transformers import PaliGemmaProcessor

    policy = policy_of("paligemma")
    images = frames()
    hf = PaliGemmaProcessor(image_processor=image_processor("paligemma"),
                            tokenizer=policy.tokenizer)(text=[TASK], images=[images],
                                                        return_tensors="pt")  # fmt: skip
    ours = our_inputs(policy, images)
    assert ours[TOKENS].tolist() == hf["input_ids"].tolist()
    pixels = torch.cat([ours["observation.images.front"], ours["observation.images.wrist"]])
    torch.testing.assert_close(pixels, hf["pixel_values"], atol=1e-5, rtol=0)


def test_smolvlm_prompt_and_pixels_are_its_processors():
    from transformers.models.smolvlm.processing_smolvlm import get_image_prompt_string

    policy = policy_of("smolvlm")
    images = frames()
    image = get_image_prompt_string(0, 0, policy.backbone.image_tokens,
                                    "<fake_token_around_image>", "<image>", "<global-img>")  # fmt: skip
    text = f"<|im_start|>User:{image}{image}{TASK}<end_of_utterance>\nAssistant:"
    ours = our_inputs(policy, images)
    assert ours[TOKENS][0].tolist() == policy.tokenizer(text, add_special_tokens=False)["input_ids"]
    hf = image_processor("smolvlm")(images=[images], return_tensors="pt")["pixel_values"][0]
    pixels = torch.cat([ours["observation.images.front"], ours["observation.images.wrist"]])
    torch.testing.assert_close(pixels, hf, atol=1e-5, rtol=0)


def test_qwen2_vl_pixels_are_its_processors_patches():
    policy = policy_of("qwen2_vl")
    images = frames()
    hf = image_processor("qwen2_vl")(images=images, return_tensors="pt")
    ours = our_inputs(policy, images)
    pixels = torch.cat([ours["observation.images.front"], ours["observation.images.wrist"]])
    torch.testing.assert_close(qwen2_vl_patches(pixels, 8, 2, 2), hf["pixel_values"], atol=1e-5,
                               rtol=0)  # fmt: skip
    per_image = int(hf["image_grid_thw"][0].prod()) // 4
    assert (ours[TOKENS] == policy.backbone.image_token_id).sum() == 2 * per_image


@pytest.mark.parametrize("family", ["smolvlm", "qwen2_vl", "qwen2_5_vl"])
def test_prompt_hidden_states_are_the_models_own_forward(family):
    """The model's own forward (its image-feature scatter, Qwen2-VL's 3-D rotary positions
    from its get_rope_index) on the prompt ids and pixels gives our hidden states, for a
    left-padded batch too. (PaliGemma's own forward attends the prompt bidirectionally; a
    policy drives it causally, see model/vlm.py.)"""
    policy = policy_of(family)
    bb = policy.backbone
    obs = obs_only(make_batch(3, seed=2, image_size=IMAGE))
    inputs = policy.preprocess(obs)
    ids, mask = inputs[TOKENS], inputs[TOKENS_MASK]
    assert mask is not None and (mask == 0).any()  # the batch is padded
    images = [inputs["observation.images.front"], inputs["observation.images.wrist"]]
    with torch.no_grad():
        embeds, _ = bb.embed_prompt(images, ids)
        pos = (mask.cumsum(1) - 1).clamp_min(0)
        ours = bb.decode(embeds, mask, pos)
        # the HF layout: sample-major images
        pixels = torch.stack(images, 1).contiguous()  # (B, C, 3, S, S)
        if family.startswith("qwen"):
            flat = qwen2_vl_patches(pixels.flatten(0, 1), 8, 2, 2)
            grid = torch.tensor([[1, IMAGE // 8, IMAGE // 8]] * pixels.shape[0] * 2)
            kinds = (ids == bb.image_token_id).int()
            theirs = bb.lm.model(input_ids=ids, pixel_values=flat, image_grid_thw=grid,
                                 attention_mask=mask, mm_token_type_ids=kinds)  # fmt: skip
        else:
            theirs = bb.lm.model(input_ids=ids, pixel_values=pixels, attention_mask=mask)
    real = mask.bool()
    torch.testing.assert_close(ours[real], theirs.last_hidden_state[real], atol=1e-5, rtol=1e-4)
