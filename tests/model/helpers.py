"""Tiny policy configs and batches shared by the model tests (32×32 images, 2-layer models)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from embodied_mm.model.backbone import BackboneConfig
from embodied_mm.model.configuration_vla import PolicyConfig
from embodied_mm.model.encoders import ProprioConfig, VisionConfig
from embodied_mm.model.heads import HeadConfig

REPO = Path(__file__).resolve().parents[2]

HEAD_KINDS = ["chunk", "discrete", "flow"]
FAMILIES = ["qwen2", "llama", "gpt2"]
STATE_DIM, ACTION_DIM, CHUNK = 5, 3, 4
ACTION_LOW = [-0.5, 0.0, -2.0]
ACTION_HIGH = [0.5, 1.0, 2.0]
TASKS = [
    "pick the red cube",
    "push the blue block onto the green plate please",
    "stack",
    "put the yellow ball in the bin",
]


def tiny_config(head: str = "chunk", family: str = "qwen2", **overrides) -> PolicyConfig:
    cfg = PolicyConfig(
        head=HeadConfig(kind=head, expert_hidden=32, expert_layers=1, expert_heads=2, flow_steps=5),
        cameras=["front", "wrist"],
        image_size=32,
        state_dim=STATE_DIM,
        action_dim=ACTION_DIM,
        chunk_size=CHUNK,
        vision=VisionConfig(
            family="siglip", image_size=32, patch_size=16, hidden_size=32, num_layers=1,
            num_heads=2, intermediate_size=64,
        ),
        proprio=ProprioConfig(hidden_size=32),
        backbone=BackboneConfig(
            family=family, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
            intermediate_size=128,
        ),
    )  # fmt: skip
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def tiny_stats() -> dict:
    return {
        "observation.state": {
            "mean": [0.1 * i for i in range(STATE_DIM)],
            "std": [1.0 + 0.5 * i for i in range(STATE_DIM)],
        },
        "action": {
            "q01": ACTION_LOW,
            "q99": ACTION_HIGH,
            "min": [lo - 0.1 for lo in ACTION_LOW],
            "max": [hi + 0.1 for hi in ACTION_HIGH],
        },
    }


def make_batch(batch: int = 4, seed: int = 0, image_size: int = 32, plans: bool = False) -> dict:
    """A training batch in LeRobot keys; actions lie inside the q01/q99 bounds."""
    g = torch.Generator().manual_seed(seed)
    low, high = torch.tensor(ACTION_LOW), torch.tensor(ACTION_HIGH)
    out = {
        "observation.images.front": torch.randint(
            0, 256, (batch, image_size, image_size, 3), dtype=torch.uint8, generator=g
        ),
        "observation.images.wrist": torch.randint(
            0, 256, (batch, image_size, image_size, 3), dtype=torch.uint8, generator=g
        ),
        "observation.state": torch.randn(batch, STATE_DIM, generator=g),
        "task": [TASKS[(seed + i) % len(TASKS)] for i in range(batch)],
        "action": low + (high - low) * torch.rand(batch, CHUNK, ACTION_DIM, generator=g),
    }
    if plans:
        out["plan"] = ["move above the red cube", "", "lift the block", "open the gripper"][:batch]
    return out


def without_dropout(policy):
    """The policy with every dropout off: GPT-2's draws differ in shape between running the
    prefix once for all suffixes and running each whole sequence (gradient checkpointing)."""
    for module in policy.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return policy


def obs_only(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in ("action", "action_is_pad", "plan")}


def fixed_loss(policy, batch: dict) -> float:
    """The loss with a fixed RNG draw, so flow matching's noise and time are the same at the
    start and the end (its loss is an average over them)."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(123)
        losses = [policy.compute_loss(batch)[0].item() for _ in range(8)]
    return sum(losses) / len(losses)


def fit_fixed_batch(
    policy, batch: dict, lr: float, max_steps: int, check_every: int
) -> tuple[float, float, int]:
    """AdamW on one batch under a one-cycle schedule until the loss is 10% of its start
    (checked every ``check_every`` steps) or ``max_steps``: (start loss, end loss, steps).
    Annealing matters for L1, whose constant-size gradients otherwise keep it oscillating."""
    start = end = fixed_loss(policy, batch)
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max_steps, pct_start=0.1)
    step = 0
    for step in range(1, max_steps + 1):
        loss, _ = policy.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % check_every == 0:
            end = fixed_loss(policy, batch)
            if end <= 0.1 * start:
                break
    return start, end, step


# Loads each policy directory given after the output path in a fresh interpreter and saves its
# chunk (and plan lengths, where the head writes plans) for the batch make_batch(3, seed=7).
_FRESH_PROCESS = """
import sys, torch
from safetensors.torch import save_file
from embodied_mm.model.modeling_vla import VLAPolicy
from tests.model.helpers import make_batch, obs_only
torch.set_num_threads(1)
plans = sys.argv[2] == "plans"
out = {}
for i, d in enumerate(sys.argv[3:]):
    policy = VLAPolicy.from_pretrained(d, device="cpu").eval()
    obs = obs_only(make_batch(3, seed=7))
    out[f"chunk{i}"] = policy.predict_chunk(obs).contiguous()
    if plans:
        out[f"plan{i}"] = torch.tensor([len(p) for p in policy.generate_plan(obs, max_new_tokens=6)])
save_file(out, sys.argv[1])
"""


def nudge_off_init(policy) -> None:
    """Move every weight off its initial value, so that a load that skipped weights shows."""
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.01)


def outputs_in_fresh_process(out: Path, directories: list[Path], plans: bool) -> dict:
    """What :data:`_FRESH_PROCESS` computes for ``directories`` (offline, one thread):
    ``chunk{i}`` (B, K, D) and, with ``plans``, ``plan{i}`` (B,) plan lengths."""
    from safetensors.torch import load_file

    subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(out), "plans" if plans else "-",
         *[str(d) for d in directories]],
        cwd=REPO, check=True, timeout=300,
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return load_file(out)
