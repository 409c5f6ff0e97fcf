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


def random_token_swap(
    ids: torch.Tensor, mask: torch.Tensor | None, p: float, vocab: int
) -> torch.Tensor:
    """Replace each real token of ``ids`` (B, L) with a uniformly drawn id in ``[0, vocab)``
    with probability ``p`` (``mask`` (B, L), 1 = real token; None: all real) → (B, L).

    Held-out phrasings bring words the text path never saw in training, whose embeddings are
    whatever they were initialised to; trained with some of its words swapped for random
    ones, a policy learns to rely on the words that matter (the colour, the object) and to
    shrug off the rest.
    """
    if p <= 0:
        return ids
    swap = torch.rand(ids.shape, device=ids.device) < p  # (B, L)
    if mask is not None:
        swap &= mask.bool()
    return torch.where(swap, torch.randint_like(ids, 0, vocab), ids)
