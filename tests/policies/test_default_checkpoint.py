"""The default policy shipped in sim_assets/checkpoints/default (made by `make default-policy`)."""

from embodied_mm.cli.demo import shipped_checkpoint
from embodied_mm.model.modeling_vla import VLAPolicy

MAX_BYTES = 20 * 1024 * 1024  # the budget for a shipped checkpoint


def test_shipped_checkpoint_is_small_and_loads_offline():
    path = shipped_checkpoint()
    assert path is not None, "sim_assets/checkpoints/default is missing"
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size <= MAX_BYTES, f"{size / 2**20:.1f} MiB"
    policy = VLAPolicy.from_pretrained(path, device="cpu")
    cfg = policy.config
    assert cfg.head.kind == "chunk" and cfg.cameras == ["front", "wrist"]
    assert cfg.vision.family == "resnet" and cfg.vision.film and cfg.vision.keypoints > 0


def test_shipped_checkpoint_keeps_the_normalisation_it_was_trained_with():
    # Saved before the std floor existed (config version 1): its 0.0013-std quaternion dim
    # must stay as trained (with the floor, PyBullet PickLift fell from 96% to 84%).
    policy = VLAPolicy.from_pretrained(shipped_checkpoint(), device="cpu")
    assert policy.config.std_floor_rel == 0.0
