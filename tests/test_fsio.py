"""Crash-safe writes, and files that follow the umask (datasets and checkpoints alike)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from embodied_mm.fsio import atomic_write_bytes, current_umask, make_dirs

# Runs in its own process: the umask is process-wide and would leak into other tests.
WRITE_UNDER_UMASK = """
import os, sys
from pathlib import Path
os.umask(int(sys.argv[1], 8))
root = Path(sys.argv[2])
from embodied_mm.data.recorder import record
from embodied_mm.policies import make_policy
from tests.data.synthetic_source import synthetic_factory
record(synthetic_factory(), root / "ds", 3, progress=False)
make_policy("vla-chunk", size="tiny").save_pretrained(root / "policy")
import torch
from embodied_mm.train.tree_io import save_tree
save_tree({"step": 1, "weights": torch.zeros(3)}, root / "policy", "training_state")
"""


def _modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask022", "umask077"])
def test_dataset_and_policy_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_UMASK, oct(umask)[2:], str(tmp_path)],
        check=True,
        timeout=300,
    )
    modes = _modes(tmp_path)
    files = {k: m for k, m in modes.items() if (tmp_path / k).is_file()}
    dirs = {k: m for k, m in modes.items() if (tmp_path / k).is_dir()}
    # what was written: parquet + json metadata, packed videos, the lock, weights, tokenizer
    for name in (
        "ds/meta/info.json",
        "ds/meta/episodes/chunk-000/file-000.parquet",
        "ds/data/chunk-000/file-000.parquet",
        "ds/videos/observation.images.front/chunk-000/file-000.mp4",
        "ds/.lock",
        "policy/model.safetensors",
        "policy/config.json",
        "policy/training_state.safetensors",
    ):
        assert name in files, sorted(files)
    assert {k: m for k, m in files.items() if m != 0o666 & ~umask} == {}
    assert {k: m for k, m in dirs.items() if m != 0o777 & ~umask} == {}


def test_atomic_write_follows_the_umask_of_this_process(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.bin"
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()
    assert [p.name for p in path.parent.iterdir()] == ["x.bin"]  # no temporary left


def test_current_umask_reads_without_changing_it() -> None:
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert current_umask() == 0o027
    finally:
        os.umask(old)


def test_make_dirs_creates_every_missing_level(tmp_path: Path) -> None:
    make_dirs(tmp_path / "x" / "y" / "z")
    assert (tmp_path / "x" / "y" / "z").is_dir()
    make_dirs(tmp_path / "x" / "y" / "z")  # already there: nothing to do
