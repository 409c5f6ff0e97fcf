"""Spatial-softmax keypoint readout of conv towers."""

import pytest
import torch

from embodied_mm.model.encoders import VisionConfig, VisionTower
from embodied_mm.model.keypoints import KeypointReadout


def test_keypoint_follows_the_peak_of_its_map():
    readout = KeypointReadout(channels=1, num_keypoints=1, out_dim=4)
    with torch.no_grad():
        readout.logits.weight.fill_(50.0)  # sharp softmax: the keypoint sits on the peak
        readout.logits.bias.zero_()
    captured = {}
    readout.where.register_forward_hook(lambda m, inp, out: captured.update(xy=inp[0]))
    fmap = torch.zeros(2, 1, 5, 7)
    fmap[0, 0, 0, 6] = 1.0  # top-right corner
    fmap[1, 0, 4, 0] = 1.0  # bottom-left corner
    out = readout(fmap)
    assert out.shape == (2, 1, 4)
    torch.testing.assert_close(captured["xy"][:, 0], torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))


def test_keypoint_tower_gives_k_tokens_and_moves_with_the_object():
    torch.manual_seed(0)
    cfg = VisionConfig(family="resnet", image_size=32, hidden_size=32, num_layers=2, keypoints=6)
    tower = VisionTower(cfg).eval()
    assert tower.num_tokens == 6
    a = torch.zeros(1, 3, 32, 32)
    a[..., 4:10, 4:10] = 1.0
    b = torch.roll(a, shifts=(16, 16), dims=(2, 3))  # the same square elsewhere
    feats = tower(torch.cat([a, b]))
    assert feats.shape == (2, 6, 32)
    assert (feats[0] - feats[1]).abs().max() > 1e-3


def test_keypoints_need_a_conv_tower():
    with pytest.raises(ValueError, match="keypoints read out a conv feature map"):
        VisionTower(VisionConfig(family="siglip", image_size=32, keypoints=4))
