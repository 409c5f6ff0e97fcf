"""``vlm`` policies: one pretrained VLM (SmolVLM, PaliGemma, Qwen2-VL; tiny random ones here)
as encoder, projector and LLM, under the chunk and flow heads."""

import pytest
import torch

from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.model.vlm import VLMBackbone
from tests.model.helpers import (
    ACTION_DIM,
    ACTION_HIGH,
    ACTION_LOW,
    CHUNK,
    fit_fixed_batch,
    make_batch,
    obs_only,
    tiny_stats,
)
from tests.model.vlm_helpers import VLM_KINDS, tiny_vlm_config

HEADS = ["chunk", "flow"]
# (peak learning rate, steps, batch) of a one-cycle schedule, as tests/model/test_learning.py;
# flow matching fits a noisy target (its loss averages over noise and time): a batch of two
# keeps it within the steps (and the test within its time)
SCHEDULE = {"chunk": (3e-3, 300, 4), "flow": (1e-2, 700, 2)}


def policy_of(family: str, head: str = "chunk", seed: int = 0, **vlm_fields) -> VLAPolicy:
    torch.manual_seed(seed)
    return VLAPolicy(tiny_vlm_config(family, head, **vlm_fields), tiny_stats(), device="cpu")


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", VLM_KINDS)
def test_forward_backward_bounds_and_batch_independence(family, head):
    policy = policy_of(family, head)
    assert isinstance(policy.backbone, VLMBackbone) and policy.vision is None
    batch = make_batch(3)
    inputs = policy.preprocess(batch)
    prefix, _, _, feats = policy.prefix_from_inputs(inputs)
    bb = policy.backbone
    prompt = inputs["observation.language.tokens"]
    # the prompt holds every camera's image tokens; the state token follows it
    assert (prompt == bb.image_token_id).sum(1).tolist() == [2 * bb.image_tokens] * 3
    assert prefix.shape == (3, prompt.shape[1] + 1, bb.hidden_size)
    assert feats.shape == (3, 2, bb.image_tokens, bb.hidden_size)
    loss, _ = policy.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in policy.head.parameters())
    vision = VLMBackbone.vision_encoder(bb.lm)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vision.parameters())

    policy.eval()
    obs = obs_only(make_batch(3, seed=5))
    chunk = policy.predict_chunk(obs)
    assert chunk.shape == (3, CHUNK, ACTION_DIM)
    low, high = torch.tensor(ACTION_LOW), torch.tensor(ACTION_HIGH)
    assert ((chunk >= low - 1e-5) & (chunk <= high + 1e-5)).all()
    # each sample's chunk is what it gets alone (its prompt padded differently in the batch)
    for i in range(3):
        alone = {k: v[i : i + 1] for k, v in obs.items()}
        torch.testing.assert_close(policy.predict_chunk(alone), chunk[i : i + 1], atol=2e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", VLM_KINDS)
def test_loss_falls_90_percent_on_a_fixed_batch(family, head):
    policy = policy_of(family, head)
    lr, max_steps, size = SCHEDULE[head]
    batch = make_batch(size, seed=3)
    start, end, step = fit_fixed_batch(policy, batch, lr, max_steps, check_every=100)
    assert end <= 0.1 * start, f"{family}/{head}: loss {start:.3f} -> {end:.3f} in {step} steps"


@pytest.mark.parametrize("family", VLM_KINDS)
def test_keep_layers_keeps_exactly_n(family):
    policy = policy_of(family, keep_layers=1)
    decoder = policy.backbone.decoder
    assert len(decoder.layers) == 1
    text = policy.config.vlm.hf_config["text_config"]
    assert text["num_hidden_layers"] == 1
    assert len(text.get("layer_types") or [None]) == 1
    assert not any(".layers.1." in n for n, _ in policy.named_parameters())
    # the saved architecture rebuilds with the one layer
    again = VLAPolicy(policy.config, tiny_stats(), device="cpu")
    assert len(again.backbone.decoder.layers) == 1
    with pytest.raises(ValueError, match="keep_layers"):
        policy_of(family, keep_layers=5)


@pytest.mark.parametrize("family", VLM_KINDS)
def test_frozen_vision_encoder_is_unchanged_by_a_step(family):
    policy = policy_of(family, freeze_vision=True)
    vision = VLMBackbone.vision_encoder(policy.backbone.lm)
    before = {n: p.detach().clone() for n, p in vision.named_parameters()}
    rest = {n: p.detach().clone() for n, p in policy.backbone.named_parameters()}
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    policy.compute_loss(make_batch(2))[0].backward()
    opt.step()
    assert all(torch.equal(p, before[n]) for n, p in vision.named_parameters())
    changed = [n for n, p in policy.backbone.named_parameters() if not torch.equal(p, rest[n])]
    assert changed and all(n.removeprefix("lm.") not in before for n in changed)


@pytest.mark.parametrize("family", VLM_KINDS)
def test_lora_trains_only_the_adapters_of_the_lm(family):
    policy = policy_of(family, lora_rank=4, freeze_vision=True)
    bb = policy.backbone
    lora = [n for n, _ in bb.decoder.named_parameters() if "lora_" in n]
    assert lora
    lm_params = {**dict(bb.decoder.named_parameters()),
                 "embed": bb.lm.get_input_embeddings().weight}  # fmt: skip
    before = {n: p.detach().clone() for n, p in lm_params.items()}
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    policy.compute_loss(make_batch(2))[0].backward()
    opt.step()
    for name, p in lm_params.items():
        assert p.requires_grad == ("lora_" in name), name
        if "lora_B" in name:  # B starts at zero and moves
            assert not torch.equal(p, before[name]), name
        elif "lora_" not in name:
            assert torch.equal(p, before[name]), name


@pytest.mark.parametrize("family", VLM_KINDS)
def test_gradient_checkpointing_gives_the_same_gradients(family):
    grads = []
    for checkpointing in (False, True):
        policy = policy_of(family, gradient_checkpointing=checkpointing).train()
        assert policy.backbone.lm.is_activation_checkpointing == checkpointing
        policy.compute_loss(make_batch(2))[0].backward()
        params = list(policy.backbone.parameters())
        grads.append(
            torch.cat(
                [(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in params]
            )
        )
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("family", VLM_KINDS)
def test_discrete_bins_are_added_vocabulary_and_plans_use_the_lm_head(family):
    policy = policy_of(family, "discrete")
    bb = policy.backbone
    offset = policy.head.token_offset
    assert offset == bb.cfg.extra_token_offset >= len(policy.tokenizer)
    assert bb.vocab_size >= offset + policy.config.head.num_bins
    batch = make_batch(2, plans=True)
    loss, metrics = policy.compute_loss(batch)
    loss.backward()
    assert "ce" in metrics and "plan_ce" in metrics
    assert bb.lm.get_input_embeddings().weight.grad[offset:].abs().sum() > 0  # the bins' rows
    policy.eval()
    obs = obs_only(make_batch(2, seed=5))
    chunk = policy.predict_chunk(obs)
    assert chunk.shape == (2, CHUNK, ACTION_DIM)
    for i in range(2):
        alone = {k: v[i : i + 1] for k, v in obs.items()}
        torch.testing.assert_close(policy.predict_chunk(alone), chunk[i : i + 1])
    plans = policy.generate_plan(obs, max_new_tokens=4)
    assert len(plans) == 2 and all(isinstance(p, str) for p in plans)
