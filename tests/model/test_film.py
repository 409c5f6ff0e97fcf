"""FiLM-conditioned conv towers."""

import pytest
import torch

from embodied_mm.model.encoders import VisionConfig, VisionTower
from embodied_mm.model.film import InstructionSummary, pooled_text
from embodied_mm.model.modeling_vla import VLAPolicy
from tests.model.helpers import make_batch, tiny_config, tiny_stats


def resnet(**kw) -> VisionConfig:
    return VisionConfig(family="resnet", image_size=32, hidden_size=32, num_layers=2, **kw)


def randomize_film(tower: VisionTower) -> None:
    g = torch.Generator().manual_seed(0)
    for layer in tower.film.out:
        layer.weight.data = 0.5 * torch.randn(layer.weight.shape, generator=g)


def test_new_film_tower_computes_the_plain_tower():
    torch.manual_seed(0)
    film = VisionTower(resnet(film=True), cond_dim=8).eval()
    plain = VisionTower(resnet()).eval()
    plain.load_state_dict({k: v for k, v in film.state_dict().items() if not k.startswith("film.")})
    pixels = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(film(pixels, torch.randn(3, 8)), plain(pixels), rtol=0, atol=1e-6)


def test_film_features_depend_on_the_instruction():
    torch.manual_seed(0)
    tower = VisionTower(resnet(film=True), cond_dim=8).eval()
    randomize_film(tower)
    pixels = torch.rand(1, 3, 32, 32).expand(2, -1, -1, -1)
    feats = tower(pixels, torch.randn(2, 8))  # same image, two instructions
    assert feats.shape == (2, tower.num_tokens, 32)
    assert (feats[0] - feats[1]).abs().max() > 1e-2
    with pytest.raises(ValueError, match="pass cond"):
        tower(pixels)


def test_film_needs_a_conv_tower_and_cond_dim():
    with pytest.raises(ValueError, match="'siglip' is a vit tower"):
        VisionTower(VisionConfig(family="siglip", image_size=32, film=True), cond_dim=8)
    with pytest.raises(ValueError, match="needs cond_dim"):
        VisionTower(resnet(film=True))
    with pytest.raises(ValueError, match="shift_augment: expected int ≥ 0, got -1"):
        VisionTower(resnet(shift_augment=-1))


def test_pooled_text_ignores_padding():
    text = torch.arange(12.0).view(1, 4, 3).repeat(2, 1, 1)  # (B, L, H)
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    out = pooled_text(text, mask)
    torch.testing.assert_close(out[0], text[0, 2:].mean(0))
    torch.testing.assert_close(out[1], text[1].mean(0))
    torch.testing.assert_close(pooled_text(text, None), text.mean(1))


def test_attention_summary_reads_word_order_and_ignores_padding():
    torch.manual_seed(0)
    mean, attention = InstructionSummary("mean", 16, 8), InstructionSummary("attention", 16, 8)
    text = torch.randn(1, 5, 16)  # (B, L, H)
    swapped = text[:, [0, 3, 2, 1, 4]]  # "the pink on the green" -> "the green on the pink"
    torch.testing.assert_close(mean(swapped, None), mean(text, None))
    assert (attention(swapped, None) - attention(text, None)).abs().max() > 1e-2
    padded = torch.cat([torch.randn(1, 3, 16), text], dim=1)  # left padding, 3 tokens
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    torch.testing.assert_close(attention(padded, mask), attention(text, None), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="film_text must be one of mean, attention; got 'bag'"):
        InstructionSummary("bag", 16, 8)


def test_attention_film_policy_tells_object_from_destination(tmp_path):
    """The same words in another order (which cube goes on which) change the image features
    of an attention-read FiLM tower, and not of a mean-read one; both survive save/load."""
    for kind, differs in (("attention", True), ("mean", False)):
        torch.manual_seed(0)
        policy = VLAPolicy(tiny_config(vision=resnet(film=True, film_text=kind)),
                           stats=tiny_stats(), device="cpu")  # fmt: skip
        randomize_film(policy.vision.towers[0])
        policy.eval()
        one = make_batch(1)
        batch = {k: v.expand(2, *v.shape[1:]) if torch.is_tensor(v) else v for k, v in one.items()}
        batch["task"] = [
            "put the pink cube on the green cube",
            "put the green cube on the pink cube",
        ]
        with torch.no_grad():
            feats = policy.prefix_from_inputs(policy.preprocess(batch))[3]  # (B, C, N, Dv)
        assert bool((feats[0] - feats[1]).abs().max() > 1e-3) == differs, kind
        chunk = policy.predict_chunk(batch)
        policy.save_pretrained(tmp_path / kind)
        loaded = VLAPolicy.from_pretrained(tmp_path / kind, device="cpu").eval()
        assert loaded.config.vision.film_text == kind
        torch.testing.assert_close(loaded.predict_chunk(batch), chunk, rtol=0, atol=1e-6)


def film_policy() -> VLAPolicy:
    cfg = tiny_config(vision=resnet(film=True, shift_augment=2))
    policy = VLAPolicy(cfg, stats=tiny_stats(), device="cpu")
    randomize_film(policy.vision.towers[0])
    return policy


def test_film_policy_actions_follow_the_instruction_and_survive_save_load(tmp_path):
    torch.manual_seed(0)
    policy = film_policy().eval()
    batch = make_batch(2)
    batch["observation.images.front"][1] = batch["observation.images.front"][0]
    batch["observation.images.wrist"][1] = batch["observation.images.wrist"][0]
    batch["observation.state"][1] = batch["observation.state"][0]
    batch["task"] = ["pick the red cube", "pick the blue cube"]
    chunk = policy.predict_chunk(batch)  # eval: no shift, deterministic
    assert (chunk[0] - chunk[1]).abs().max() > 1e-3
    torch.testing.assert_close(policy.predict_chunk(batch), chunk, rtol=0, atol=0)
    policy.save_pretrained(tmp_path)
    loaded = VLAPolicy.from_pretrained(tmp_path, device="cpu").eval()
    assert loaded.config.vision.film and loaded.config.vision.shift_augment == 2
    torch.testing.assert_close(loaded.predict_chunk(batch), chunk, rtol=0, atol=1e-6)


def test_film_policy_trains_end_to_end():
    torch.manual_seed(0)
    policy = film_policy().train()
    loss, _ = policy.compute_loss(make_batch(4))
    loss.backward()
    film = policy.vision.towers[0].film
    assert film.out[0].weight.grad.abs().sum() > 0
    assert policy.backbone.embed(torch.tensor([[5]])).requires_grad  # the text side learns too
