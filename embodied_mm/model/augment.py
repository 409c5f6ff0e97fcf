"""Image augmentation applied inside the policy during training."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(pixels: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ-style random translation: pad each image by ``pad`` pixels (edge replicated) and
    crop back to its size at a random offset per image. (B, 3, H, W) → (B, 3, H, W).

    With a few hundred demos a policy memorises the training scenes pixel for pixel; shifting
    by a few pixels makes it read object positions relative to each other instead.
    """
    if pad <= 0:
        return pixels
    b, c, h, w = pixels.shape
    padded = F.pad(pixels, (pad, pad, pad, pad), mode="replicate")  # (B, 3, H+2p, W+2p)
    dev = pixels.device
    oy = torch.randint(0, 2 * pad + 1, (b,), device=dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), device=dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=dev)[:, None, None, None]
    chan = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch, chan, rows, cols]
