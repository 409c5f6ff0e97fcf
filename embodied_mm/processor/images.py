"""``camera_pixels``: camera frames → the vision tower's normalised pixels (tensor stage).

Per camera: uint8 (B, H, W, 3) frames or float (B, 3, H, W) frames in [0, 1] (the window
dataset's layout) → float (B, 3, S, S), resized to the tower's input size S and normalised
with the tower family's mean and std, as the tower was trained. Integer downscales average
k×k boxes (what OpenCV's INTER_AREA does); other sizes use antialiased bilinear.

The 2× downscale of uint8 frames (our sim's 128 → 64) is the control loop's case and is fused
into a few cheap ops: the sum of each row pair in int16 (exact), to float with the mean folded
in, then one (N, 6) @ (6, 3) matmul that adds each column pair and applies the per-channel
scale. It equals box average then ``(x - mean) / std`` up to float
rounding (≤ 1e-6; tests/processor/test_images.py). Hand-written because no library call does
resize + normalise of HWC uint8 frames in one pass on CPU tensors (torchvision's
``Resize`` + ``Normalize`` are the six-op chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from embodied_mm.features import image_key
from embodied_mm.model.encoders import images_to_float
from embodied_mm.processor.core import Resources, Step


def resize(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """float (B, 3, H, W) → (B, 3, S, S): box average for integer downscales, else
    antialiased bilinear."""
    h, w = pixels.shape[-2:]
    if (h, w) == (size, size):
        return pixels
    if h == w and h % size == 0:
        return F.avg_pool2d(pixels, kernel_size=h // size)
    return F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)


@dataclass
class CameraPixelsParams:
    cameras: list[str]
    size: int  # the vision tower's input size S
    mean: list[float]  # per-channel pixel mean the tower family was trained with (RGB)
    std: list[float]

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1; got {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0; got {self.mean}, {self.std}")


class CameraPixels(nn.Module, Step):
    name = "camera_pixels"
    stage = "tensor"
    side = "input"
    Params = CameraPixelsParams

    def __init__(self, params: CameraPixelsParams) -> None:
        super().__init__()
        self.params = params
        self.keys = [image_key(c) for c in params.cameras]
        s = params.size
        mean = torch.tensor(params.mean, dtype=torch.float32)
        std = torch.tensor(params.std, dtype=torch.float32)
        # (x - mean) / std as one fused multiply-add on float frames in [0, 1].
        self.register_buffer("scale", (1.0 / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (-mean / std).view(1, 3, 1, 1), persistent=False)
        # The fused 2× path on uint8 (see the module docstring): a 2×2 box of uint8 values
        # sums to 4·255·x̄; adding -2·255·mean to each vertical pair sum (both pairs of a box:
        # -4·255·mean in all) and scaling by 1 / (4·255·std) gives (x̄ - mean) / std.
        self.register_buffer(
            "pair_offset", (-510.0 * mean).repeat(2 * s), persistent=False
        )  # (2S·3,): one row of 2S pixels
        pair = torch.zeros(6, 3)
        for c in range(3):
            pair[c, c] = pair[c + 3, c] = 1.0 / (1020.0 * float(std[c]))
        self.register_buffer("pair_matrix", pair, persistent=False)  # (6, 3)

    @classmethod
    def from_params(cls, params: CameraPixelsParams, resources: Resources) -> CameraPixels:
        return cls(params)

    def _halving(self, frames: torch.Tensor) -> bool:
        s = self.params.size
        return frames.dtype == torch.uint8 and tuple(frames.shape[1:]) == (2 * s, 2 * s, 3)

    def pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames of one camera, or of several stacked on the batch axis (see the module
        docstring) → (B, 3, S, S) normalised."""
        s = self.params.size
        if frames.ndim == 4 and self._halving(frames):
            b = frames.shape[0]
            rows = frames.view(b, s, 2, 6 * s)  # (B, S, 2, 2S·3): row pairs
            # int16 sums (≤ 510, exact): a quarter of the memory traffic of float frames
            pairs = (rows[:, :, 0].to(torch.int16) + rows[:, :, 1]).float()  # (B, S, 6S)
            pairs = pairs.add_(self.pair_offset)
            out = pairs.view(-1, 6) @ self.pair_matrix  # (B·S·S, 3): column pairs, scaled
            # (B, 3, S, S), copied to the contiguous layout the towers' first conv is fastest on
            return out.view(b, s, s, 3).permute(0, 3, 1, 2).contiguous()
        return torch.addcmul(self.shift, resize(images_to_float(frames), s), self.scale)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        frames = [batch[k] for k in self.keys]
        if len(frames) > 1 and all(self._halving(f) and f.shape == frames[0].shape for f in frames):
            # All cameras in one pass: fewer, larger ops (C·B, 3, S, S), then per-camera views.
            for key, px in zip(
                self.keys, self.pixels(torch.cat(frames)).chunk(len(frames)), strict=True
            ):
                batch[key] = px
            return batch
        for key, f in zip(self.keys, frames, strict=True):
            batch[key] = self.pixels(f)
        return batch
