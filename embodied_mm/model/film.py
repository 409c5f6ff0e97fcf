"""Language-conditioned vision: FiLM layers between the stages of a conv tower.

A small policy trained from scratch on a few hundred demos does not learn to match the colour
word of an instruction to image tokens through the backbone's attention alone (swapping the
instructions of two samples barely changed its actions). RT-1 and BC-Z condition the image
encoder itself on the instruction with FiLM (Perez et al., 2018): each stage's channels are
scaled and shifted by a function of the instruction, so "red" can simply amplify red-selective
channels before any pooling. We do the same for conv towers.
"""

from __future__ import annotations

import torch
from torch import nn


class FiLM(nn.Module):
    """Instruction embedding (B, E) → per stage, a scale and shift (B, C_i, 1, 1) each.

    The output layers start at zero, so a new FiLM tower computes exactly the plain tower.
    """

    def __init__(self, cond_dim: int, channels: list[int]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(cond_dim, cond_dim), nn.GELU())
        self.out = nn.ModuleList([nn.Linear(cond_dim, 2 * c) for c in channels])
        for layer in self.out:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, cond: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        h = self.trunk(cond)  # (B, E)
        params = []
        for layer in self.out:
            gamma, beta = layer(h)[:, :, None, None].chunk(2, dim=1)  # (B, C_i, 1, 1) each
            params.append((1.0 + gamma, beta))
        return params


def pooled_text(text: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of the instruction's token embeddings (B, L, H) over real tokens → (B, H)."""
    if mask is None:
        return text.mean(dim=1)
    m = mask.to(text.dtype).unsqueeze(-1)  # (B, L, 1)
    return (text * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
