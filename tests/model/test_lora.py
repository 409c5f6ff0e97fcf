"""Freezing and LoRA: only adapters (and chosen parameters) learn; frozen weights stay put."""

import pytest
import torch

from embodied_mm.model.modeling_vla import VLAPolicy
from tests.model.helpers import FAMILIES, make_batch, tiny_config, tiny_stats, without_dropout


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_only_adapters_and_chosen_params_train(family):
    torch.manual_seed(0)
    cfg = tiny_config("chunk", family)
    cfg.vision.freeze = True
    cfg.backbone.lora_rank = 4
    embed_name = "wte" if family == "gpt2" else "embed_tokens"
    cfg.backbone.trainable = [embed_name]
    policy = VLAPolicy(cfg, stats=tiny_stats(), device="cpu")
    frozen_vision = {n: p.detach().clone() for n, p in policy.vision.towers.named_parameters()}
    frozen_backbone = {
        n: p.detach().clone()
        for n, p in policy.backbone.named_parameters()
        if "lora_" not in n and embed_name not in n
    }
    assert frozen_backbone and any("lora_" in n for n, _ in policy.backbone.named_parameters())

    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    loss, _ = policy.compute_loss(make_batch(2, plans=True))
    loss.backward()
    for name, p in policy.backbone.named_parameters():
        chosen = "lora_" in name or embed_name in name
        assert p.requires_grad == chosen, name
        if not chosen:
            assert p.grad is None, name
    assert all(p.grad is None for p in policy.vision.towers.parameters())
    lora_b = [p for n, p in policy.backbone.named_parameters() if "lora_B" in n]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)
    opt.step()

    for name, p in policy.vision.towers.named_parameters():
        assert torch.equal(p, frozen_vision[name]), name
    for name, p in policy.backbone.named_parameters():
        if name in frozen_backbone:
            assert torch.equal(p, frozen_backbone[name]), name
    assert any(not torch.equal(p, torch.zeros_like(p)) for p in lora_b)  # B starts at zero


def test_freeze_without_lora_trains_only_the_rest():
    cfg = tiny_config("flow", "qwen2")
    cfg.backbone.freeze = True
    policy = VLAPolicy(cfg, stats=tiny_stats(), device="cpu")
    assert not any(p.requires_grad for p in policy.backbone.parameters())
    policy.compute_loss(make_batch(2))[0].backward()
    assert all(p.grad is not None for p in policy.head.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_the_same_gradients(family):
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        cfg = tiny_config("chunk", family)
        cfg.backbone.gradient_checkpointing = checkpointing
        policy = without_dropout(VLAPolicy(cfg, stats=tiny_stats(), device="cpu").train())
        lm = policy.backbone.lm
        active = getattr(lm, "is_activation_checkpointing", None)
        if active is None:
            active = lm.is_gradient_checkpointing
        assert active == checkpointing
        policy.compute_loss(make_batch(2))[0].backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.backbone.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])
