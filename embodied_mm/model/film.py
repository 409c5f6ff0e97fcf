"""Language-conditioned vision: FiLM layers between the stages of a conv tower.

A small policy trained from scratch on a few hundred demos does not learn to match the colour
word of an instruction to image tokens through the backbone's attention alone (swapping the
instructions of two samples barely changed its actions). RT-1 and BC-Z condition the image
encoder itself on the instruction with FiLM (Perez et al., 2018): each stage's channels are
scaled and shifted by a function of the instruction, so "red" can simply amplify red-selective
channels before any pooling. We do the same for conv towers.

What FiLM reads of the instruction is :class:`InstructionSummary`: the mean of its token
embeddings (``film_text: mean``, the two-task default policy's) or that mean after a
self-attention layer over the tokens and their positions (``attention``). The mean is a bag
of words: "put the pink block on the green block" and "put the green block on the pink block"
give the same vector, so a tower conditioned on it cannot tell the object from the
destination (stack, push into a zone). With attention, word order counts.
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


FILM_TEXT = ("mean", "attention")


class InstructionSummary(nn.Module):
    """Instruction token embeddings (B, L, H) and their mask (B, L) (1 = real token; None =
    no padding) → the FiLM input (B, H). ``kind``: one of :data:`FILM_TEXT`.

    ``attention``: learned positions counted over real tokens only (so left padding does not
    shift them), one pre-norm self-attention block that ignores padding, then the masked mean:
    a padded batch gives each instruction the vector it gets alone.
    """

    def __init__(self, kind: str, dim: int, max_tokens: int) -> None:
        super().__init__()
        if kind not in FILM_TEXT:
            raise ValueError(f"film_text must be one of {', '.join(FILM_TEXT)}; got {kind!r}")
        self.kind = kind
        if kind == "attention":
            heads = next(h for h in (4, 2, 1) if dim % h == 0)
            self.pos = nn.Embedding(max_tokens, dim)
            self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, text: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "mean":
            return pooled_text(text, mask)
        b, n = text.shape[:2]
        if mask is None:
            pos = torch.arange(n, device=text.device).expand(b, n)  # (B, L)
        else:
            pos = (mask.long().cumsum(1) - 1).clamp_min(0)  # (B, L) index among real tokens
        x = text + self.pos(pos.clamp_max(self.pos.num_embeddings - 1))  # (B, L, H)
        h = self.norm1(x)
        pad = None if mask is None else ~mask.to(torch.bool)  # (B, L) True = ignore
        x = x + self.attn(h, h, h, key_padding_mask=pad, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))  # (B, L, H)
        return pooled_text(x, mask)


def pooled_text(text: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of the instruction's token embeddings (B, L, H) over real tokens → (B, H)."""
    if mask is None:
        return text.mean(dim=1)
    m = mask.to(text.dtype).unsqueeze(-1)  # (B, L, 1)
    return (text * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
