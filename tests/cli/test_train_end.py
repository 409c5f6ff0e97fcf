"""What ``train`` says at the end: the policy directory it wrote, which exists, and the stable
``checkpoints/last`` pointer to it."""

import subprocess
import sys
from pathlib import Path

import pytest

from embodied_mm.model.modeling_vla import VLAPolicy
from tests.train.conftest import write_dataset


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "embodied_mm.cli.main", "train", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_train_names_the_checkpoint_it_wrote_and_last_points_at_it(tmp_path):
    dataset = write_dataset(tmp_path / "ds", [12, 10])
    out = tmp_path / "run"
    args = ["--recipe", "vla-chunk", "--dataset", str(dataset), "--out", str(out),
            "--batch-size", "4", "--warmup-steps", "1", "--save-every", "2", "--keep-last", "1",
            "--policy.vision.image_size", "32"]  # fmt: skip
    result = _train(*args, "--steps", "3")
    assert result.returncode == 0, result.stderr
    final = out / "checkpoints" / "step-0000003"
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line == (
        f"checkpoint: {final / 'policy'} (eval, serve and deploy take it as --checkpoint; "
        f"also {out / 'checkpoints' / 'last' / 'policy'})"
    )
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last", "step-0000003"]
    last = out / "checkpoints" / "last"
    assert last.is_symlink() and Path(last.readlink()) == Path("step-0000003")  # relative
    VLAPolicy.from_pretrained(last / "policy", device="cpu")
    # a finished run says so, and names the same checkpoint
    again = _train(*args, "--steps", "3", "--resume")
    assert again.returncode == 0, again.stderr
    assert "already complete at step 3" in again.stdout
    assert again.stdout.strip().splitlines()[-1] == last_line
