"""camera_pixels: the fused 2× path and the general path equal box average (or antialiased
bilinear) followed by the tower family's (x - mean) / std."""

import pytest
import torch
import torch.nn.functional as F

from embodied_mm.processor.images import CameraPixels, CameraPixelsParams

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])  # distinct per channel


def step(size: int, cameras=("front",)) -> CameraPixels:
    return CameraPixels(CameraPixelsParams(list(cameras), size, *IMAGENET))


def reference(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) → float (B, 3, S, S): area resize, then (x - mean) / std."""
    x = frames.permute(0, 3, 1, 2).double() / 255.0
    x = F.interpolate(x, size=(size, size), mode="area")
    mean, std = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in IMAGENET)
    return ((x - mean) / std).float()


# Tolerance: the fused path sums four uint8 values exactly and rounds once in the matmul;
# the reference rounds in float64. 1e-5 is ~50 float32 ulps at these magnitudes (|x| < 2.7).
ATOL = 1e-5


@pytest.mark.parametrize("size", [16, 32])  # 2× (the fused path), 4× (box pooling)
def test_uint8_downscales_are_box_averages_then_normalised(size):
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8, generator=g)
    s = step(32 if size == 32 else 16)
    out = s.pixels(frames)
    assert out.shape == (3, 3, size, size)
    torch.testing.assert_close(out, reference(frames, size), atol=ATOL, rtol=0)


def test_float_frames_of_the_window_dataset_give_the_same_pixels():
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=g)
    as_float = frames.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W) in [0, 1]
    torch.testing.assert_close(
        step(32).pixels(as_float), step(32).pixels(frames), atol=ATOL, rtol=0
    )


def test_other_sizes_use_antialiased_bilinear_and_equal_sizes_only_normalise():
    g = torch.Generator().manual_seed(2)
    frames = torch.randint(0, 256, (1, 50, 70, 3), dtype=torch.uint8, generator=g)
    x = frames.permute(0, 3, 1, 2).float() / 255.0
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    ref = (F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True) - mean) / std
    torch.testing.assert_close(step(32).pixels(frames), ref, atol=ATOL, rtol=0)
    same = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8, generator=g)
    same_ref = (same.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    torch.testing.assert_close(step(32).pixels(same), same_ref, atol=ATOL, rtol=0)


def test_cameras_processed_together_equal_one_by_one():
    g = torch.Generator().manual_seed(3)
    front, wrist = (
        torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=g) for _ in "ab"
    )
    both = step(32, ("front", "wrist"))(
        {"observation.images.front": front, "observation.images.wrist": wrist}
    )
    one = step(32)
    assert torch.equal(both["observation.images.front"], one.pixels(front))
    assert torch.equal(both["observation.images.wrist"], one.pixels(wrist))
