"""Augmentations applied inside the policy."""

import torch

from embodied_mm.model.augment import random_shift


def test_random_shift_crops_the_edge_padded_image():
    torch.manual_seed(0)
    pixels = torch.rand(6, 3, 16, 16)
    assert random_shift(pixels, 0) is pixels
    out = random_shift(pixels, 2)
    assert out.shape == pixels.shape
    padded = torch.nn.functional.pad(pixels, (2, 2, 2, 2), mode="replicate")
    for i in range(6):
        crops = [padded[i, :, y : y + 16, x : x + 16] for y in range(5) for x in range(5)]
        assert any(torch.equal(out[i], c) for c in crops)
    assert any(not torch.equal(out[i], pixels[i]) for i in range(6))  # some image moved


def test_random_token_swap_replaces_real_tokens_only():
    from embodied_mm.model.augment import random_token_swap

    torch.manual_seed(0)
    ids = torch.full((64, 10), 7)
    mask = torch.zeros(64, 10, dtype=torch.long)
    mask[:, 4:] = 1  # left padding, as the tokenizer gives it
    assert random_token_swap(ids, mask, 0.0, 50) is ids
    out = random_token_swap(ids, mask, 0.5, 50)
    assert torch.equal(out[:, :4], ids[:, :4])  # padding untouched
    swapped = (out[:, 4:] != 7).float().mean().item()
    assert 0.4 < swapped < 0.6  # about half, each from [0, 50)
    assert int(out.min()) >= 0 and int(out.max()) < 50


def test_text_token_noise_applies_in_training_only():
    """The same batch gives the same loss twice in eval mode and with no noise, and
    different losses in training mode with noise (dropout-free tiny config)."""
    from embodied_mm.model.modeling_vla import VLAPolicy
    from tests.model.helpers import make_batch, tiny_config, tiny_stats

    torch.manual_seed(0)
    cfg = tiny_config(text_token_noise=0.5)
    cfg.vision.family, cfg.vision.film = "resnet", True  # the FiLM path reads the text too
    policy = VLAPolicy(cfg, stats=tiny_stats(), device="cpu")
    batch = make_batch(4)
    inputs = policy.preprocess(batch)
    policy.eval()
    with torch.no_grad():
        a, b = (policy.prefix_from_inputs(inputs)[0] for _ in range(2))
    assert torch.equal(a, b)
    policy.train()
    with torch.no_grad():
        c, d = (policy.prefix_from_inputs(inputs)[0] for _ in range(2))
    assert not torch.equal(c, d)
    policy.config.text_token_noise = 0.0  # nothing else in training mode draws at random
    with torch.no_grad():
        e, f = (policy.prefix_from_inputs(inputs)[0] for _ in range(2))
    assert torch.equal(e, f)
