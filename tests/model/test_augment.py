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
