"""The one bad-input error type and the command line's rendering of it."""

import math
import subprocess
import sys

import pytest
import torch

from embodied_mm.data.video import VideoDecodeError
from embodied_mm.errors import UsageError, one_line, require_positive


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "20"])
def test_require_positive_names_the_flag(value):
    with pytest.raises(UsageError, match=rf"^--hz must be a finite number > 0, got {value!r}$"):
        require_positive("--hz", value)


def test_require_positive_accepts_a_positive_number():
    require_positive("--hz", 0.5)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hz", "0"], "--hz must be a finite number > 0, got 0.0"),
        (["--hz", "nan"], "--hz must be a finite number > 0, got nan"),
        (["--episodes", "0"], "--episodes must be >= 1, got 0"),
        (["--steps", "-3"], "--steps must be >= 1, got -3"),
    ],
)
def test_deploy_bad_values_are_one_line(tmp_path, flags, message):
    r = subprocess.run(
        [sys.executable, "-m", "embodied_mm.cli.main", "deploy", "--robot", "sim:reach",
         "--checkpoint", str(tmp_path), *flags],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {message}"]


class _BrokenVideos(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        raise VideoDecodeError("/data/ds/videos/file-000.mp4: cannot decode frame 3")


def test_a_dataloader_worker_error_shows_as_its_original_line():
    loader = torch.utils.data.DataLoader(_BrokenVideos(), num_workers=1)
    with pytest.raises(VideoDecodeError) as caught:
        next(iter(loader))
    assert "Original Traceback" in str(caught.value)  # torch re-raised it with the worker's
    assert one_line(caught.value) == "/data/ds/videos/file-000.mp4: cannot decode frame 3"
