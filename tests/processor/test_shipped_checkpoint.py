"""The shipped checkpoint's one-time migration: it now carries its processor file, and the
unmigrated copy (no processor.json, as it shipped before) gives identical actions."""

import shutil
from pathlib import Path

import numpy as np
import torch

from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.processor.core import PROCESSOR_FILE
from embodied_mm.processor.robots import robot_layout

DEFAULT = Path(__file__).resolve().parents[2] / "sim_assets" / "checkpoints" / "default"


def observations(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    obs = {
        f"observation.images.{c}": rng.integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
        for c in ("front", "wrist")
    }
    obs["observation.state"] = (0.1 * rng.standard_normal((3, 15))).astype(np.float32)
    obs["task"] = ["pick up the red cube and lift it", "reach the green ball", "push"]
    return {k: v if k == "task" else torch.from_numpy(v) for k, v in obs.items()}


def test_old_and_migrated_shipped_checkpoints_give_identical_actions(tmp_path):
    assert (DEFAULT / PROCESSOR_FILE).is_file()
    old = tmp_path / "unmigrated"
    shutil.copytree(DEFAULT, old)
    (old / PROCESSOR_FILE).unlink()
    migrated = VLAPolicy.from_pretrained(DEFAULT, device="cpu").eval()
    unmigrated = VLAPolicy.from_pretrained(old, device="cpu").eval()
    steps = migrated.processor.pipeline.to_dict()["steps"]
    # the migration also recorded the state layout it was trained on (the sim's Panda)
    assert steps[0]["params"].pop("state_names") == list(robot_layout("panda").state_names)
    old_steps = unmigrated.processor.pipeline.to_dict()["steps"]
    assert old_steps[0]["params"].pop("state_names") is None
    assert steps == old_steps
    for seed in range(3):
        obs = observations(seed)
        assert torch.equal(migrated.predict_chunk(obs), unmigrated.predict_chunk(obs))


def test_the_shipped_checkpoint_stays_small():
    size = sum(f.stat().st_size for f in DEFAULT.rglob("*") if f.is_file())
    assert size <= 20 * 2**20, f"{DEFAULT} is {size / 2**20:.1f} MiB"
