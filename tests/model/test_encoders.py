import pytest
import torch

from embodied_mm.model.encoders import (
    VISION_FAMILIES,
    MultiCameraVision,
    ProprioConfig,
    ProprioEncoder,
    VisionConfig,
    VisionTower,
    images_to_float,
)


def small(family: str, **kw) -> VisionConfig:
    return VisionConfig(
        family=family, image_size=32, patch_size=16, hidden_size=32, num_layers=1, num_heads=2,
        intermediate_size=64, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("family", VISION_FAMILIES.names())
def test_fresh_tower_shapes(family):
    cfg = small(family)
    tower = VisionTower(cfg)
    assert (
        cfg.hf_config is not None
        and cfg.hf_config["model_type"] == VISION_FAMILIES.get(family).model_type
    )
    feats = tower(torch.rand(2, 3, 32, 32))  # pixels at the tower's size (camera_pixels step)
    assert feats.shape == (2, tower.num_tokens, 32)
    fam = VISION_FAMILIES.get(family)
    # ViT: 16-pixel patches; one-stage conv tower: its stem's stride of 4
    assert cfg.patch_size == (16 if fam.kind == "vit" else 4)
    grid = 32 // cfg.patch_size
    assert tower.num_tokens == grid * grid + (1 if fam.has_cls else 0)


def test_unknown_family_lists_known():
    # the config refuses it where it is set, naming the field
    with pytest.raises(ValueError, match="family: expected one of clip, dinov2, resnet, siglip"):
        VisionTower(small("convnext"))


def test_image_layouts_agree():
    u8 = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8)
    f = u8.permute(0, 3, 1, 2).float() / 255
    assert torch.equal(images_to_float(u8), f)
    assert torch.equal(images_to_float(f), f)
    history = torch.stack([torch.zeros_like(u8), u8], dim=1)  # (B, T, H, W, 3): last step used
    assert torch.equal(images_to_float(history), f)
    assert torch.equal(images_to_float(torch.stack([f * 0, f], 1)), f)


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(2, 3, 16, 16, dtype=torch.uint8),
        torch.zeros(2, 16, 16, 3),
        torch.zeros(2, 16, 16, dtype=torch.int32),
    ],
)
def test_bad_image_layout_fails_clearly(bad):
    with pytest.raises(ValueError, match="images must be"):
        images_to_float(bad)


@pytest.mark.parametrize("shared", [True, False])
def test_multi_camera_shapes_and_camera_embedding(shared):
    enc = MultiCameraVision(small("siglip"), ["front", "wrist"], shared=shared)
    assert len(enc.towers) == (1 if shared else 2)
    img = torch.rand(3, 3, 32, 32)
    feats = enc([img, img])  # same frame on both cameras
    assert feats.shape == (3, 2, 4, 32)
    if shared:
        # Identical frames through one tower differ only by the learned camera embedding.
        diff = feats[:, 0] - feats[:, 1]
        assert torch.allclose(
            diff, (enc.camera_embed[0] - enc.camera_embed[1]).expand_as(diff), atol=1e-5
        )
    feats.sum().backward()
    assert enc.camera_embed.grad is not None and enc.camera_embed.grad.abs().sum() > 0


def test_frozen_tower_has_no_trainable_params():
    tower = VisionTower(small("clip", freeze=True))
    assert not any(p.requires_grad for p in tower.parameters())


def test_proprio_tokens():
    enc = ProprioEncoder(ProprioConfig(hidden_size=16, num_tokens=2), state_dim=5, out_dim=8)
    assert enc(torch.randn(3, 5)).shape == (3, 2, 8)


@pytest.mark.parametrize("family", ["siglip", "clip"])
def test_pretrained_from_local_dir_vision_and_composite(tmp_path, family):
    """A saved vision-only model loads through AutoModel; a full image-text checkpoint loads
    its vision half (how hub SigLIP/CLIP checkpoints are stored)."""
    import transformers

    tower = VisionTower(small(family))
    tower.model.save_pretrained(tmp_path / "vision")
    loaded = VisionTower(VisionConfig(family=family, pretrained=str(tmp_path / "vision")))
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded(x), tower(x))

    composite_cls = {"siglip": "SiglipConfig", "clip": "CLIPConfig"}[family]
    model_cls = {"siglip": "SiglipModel", "clip": "CLIPModel"}[family]
    text = {
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    }
    full_cfg = getattr(transformers, composite_cls)(
        text_config=text, vision_config={**text, "image_size": 32, "patch_size": 16}
    )
    full = getattr(transformers, model_cls)(full_cfg)
    full.save_pretrained(tmp_path / "full")
    half = VisionTower(VisionConfig(family=family, pretrained=str(tmp_path / "full")))
    # the tower takes pixels already normalised (the processor's camera_pixels step)
    assert torch.allclose(half(x), full.vision_model(pixel_values=x).last_hidden_state, atol=1e-6)


def test_pretrained_of_wrong_family_fails(tmp_path):
    VisionTower(small("dinov2")).model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="dinov2"):
        VisionTower(VisionConfig(family="siglip", pretrained=str(tmp_path)))


def test_conv_tower_tokens_follow_the_feature_map():
    cfg = VisionConfig(family="resnet", image_size=64, hidden_size=32, num_layers=3)
    tower = VisionTower(cfg)
    assert cfg.patch_size == 16 and cfg.hf_config["hidden_sizes"] == [8, 16, 32]
    feats = tower(torch.rand(2, 3, 64, 64))
    assert feats.shape == (2, 16, 32)  # a 4×4 map of 32 channels, read row by row
    # token i is feature-map cell (i // 4, i % 4) of the (normalised) image
    x = torch.rand(1, 3, 64, 64)
    fmap = tower.model(pixel_values=x).last_hidden_state  # (1, 32, 4, 4)
    assert torch.allclose(tower(x)[0, 5], fmap[0, :, 1, 1], atol=1e-5)


def test_proprio_dropout_zeroes_whole_samples_in_training_only():
    from embodied_mm.model.encoders import ProprioConfig, ProprioEncoder

    enc = ProprioEncoder(ProprioConfig(dropout=0.5, num_tokens=2), state_dim=4, out_dim=8)
    state = torch.randn(256, 4)
    torch.manual_seed(0)
    out = enc.train()(state)  # (256, 2, 8)
    dropped = (out == 0).all(dim=(1, 2))
    assert 0.3 < dropped.float().mean() < 0.7  # whole samples, about half
    assert not (enc.eval()(state) == 0).all(dim=(1, 2)).any()  # never at inference
    with pytest.raises(ValueError, match=r"dropout: expected float in \[0, 1\), got 1.0"):
        ProprioEncoder(ProprioConfig(dropout=1.0), state_dim=4, out_dim=8)
