"""Spatial-softmax keypoints: a conv feature map read out as K "where + what" tokens.

Flattening a conv feature map into h*w tokens leaves a from-scratch policy to recover each
token's image position from its sequence index; with a few hundred demos it did not, and
drove to the middle of the table. The spatial-softmax readout (Levine et al., 2016; the image
readout of robomimic and Diffusion Policy) makes position explicit: each of K learned maps is
softmax-normalised over the image, and its expected (x, y) is a keypoint. With a FiLM tower,
the maps can follow the object the instruction names.
"""

from __future__ import annotations

import torch
from torch import nn


class KeypointReadout(nn.Module):
    """Feature map (B, C, h, w) → K tokens (B, K, D): the keypoint's expected (x, y) in
    [-1, 1] and the softmax-weighted feature there, each projected to D, plus a learned
    per-keypoint embedding."""

    def __init__(self, channels: int, num_keypoints: int, out_dim: int) -> None:
        super().__init__()
        self.num_keypoints = num_keypoints
        self.logits = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        self.what = nn.Linear(channels, out_dim)
        self.where = nn.Linear(2, out_dim)
        self.embed = nn.Parameter(torch.randn(num_keypoints, out_dim) * 0.02)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        h, w = fmap.shape[-2:]
        attn = self.logits(fmap).flatten(2).softmax(dim=-1)  # (B, K, h*w)
        ys = torch.linspace(-1.0, 1.0, h, device=fmap.device, dtype=fmap.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=fmap.device, dtype=fmap.dtype)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).view(h * w, 2)
        xy = attn @ grid  # (B, K, 2) expected (x, y)
        feats = attn @ fmap.flatten(2).transpose(1, 2)  # (B, K, C)
        return self.what(feats) + self.where(xy) + self.embed  # (B, K, D)
