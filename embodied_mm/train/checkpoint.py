"""Training checkpoints: written atomically, the last ``k`` kept, no pickle.

Layout of ``RUN_DIR/checkpoints/step-000500/``:
- ``policy/``: the policy's ``save_pretrained`` output (safetensors + JSON)
- ``training_state.{json,safetensors}``: optimizer, scheduler, RNG states, step and data
  position (see :mod:`embodied_mm.train.tree_io`)

``RUN_DIR/checkpoints/last`` is a relative symlink to the newest one (as in LeRobot), so
``RUN_DIR/checkpoints/last/policy`` names the latest policy whatever ``--steps`` was; it is
replaced atomically after each new checkpoint is in place.

A checkpoint is built in a hidden temp directory and renamed into place, so a crash leaves
either the previous set of checkpoints or the new one, never a half-written directory.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodied_mm.fsio import fsync_dir
from embodied_mm.train.tree_io import load_tree, save_tree

log = logging.getLogger(__name__)

STATE_NAME = "training_state"
_PREFIX = "step-"
LAST = "last"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Completed checkpoints, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX))


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def save_checkpoint(
    run_dir: Path, step: int, policy: Any, training_state: dict[str, Any], keep_last: int
) -> Path:
    """Write ``step-<step>`` atomically, then prune all but the newest ``keep_last``."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{step:07d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    policy.save_pretrained(tmp / "policy")
    save_tree(training_state, tmp, STATE_NAME)
    if final.exists():  # re-saving the same step (e.g. after a NaN stop) replaces it
        shutil.rmtree(final)
    os.rename(tmp, final)
    fsync_dir(root)
    point_last(root, final.name)
    for old in checkpoint_dirs(run_dir)[: -max(keep_last, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):  # left by a killed writer
        if stale.is_symlink():
            stale.unlink()
        else:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def point_last(root: Path, name: str) -> None:
    """Make ``root/last`` a relative symlink to ``root/name``, atomically (a new link is
    renamed over the old one). A ``last`` that is a real directory (a run directory copied with
    its links followed, e.g. by ``shutil.copytree``) may hold the only copy of a checkpoint: it
    is left as it is, with a warning, and no link is made."""
    if (root / LAST).is_dir() and not (root / LAST).is_symlink():
        log.warning("%s is a directory, not a link (a copied run?): left as it is, so it does not "
                    "name the newest checkpoint %s", root / LAST, name)  # fmt: skip
        return
    link = root / f".tmp-{LAST}-{os.getpid()}"
    if link.is_symlink():
        link.unlink()
    os.symlink(name, link, target_is_directory=True)
    os.replace(link, root / LAST)
    fsync_dir(root)


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    return load_tree(checkpoint, STATE_NAME)
