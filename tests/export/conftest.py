"""Tiny policies with non-trivial normalisation stats, saved and exported once per session."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.model.modeling_vla import VLAPolicy

EXPORTABLE = ("vla-chunk", "vla-flow", "vla-discrete")


def stats(state_dim: int = 15, action_dim: int = 7) -> dict:
    """Stats that make normalisation do something: state shifted and scaled, action bounds of
    different widths per dimension (so unnormalisation inside the graph is exercised)."""
    rng = np.random.default_rng(0)
    low = -1.0 - rng.random(action_dim)
    high = 1.0 + 2 * rng.random(action_dim)
    return {
        "observation.state": {
            "mean": rng.normal(size=state_dim).tolist(),
            "std": (0.5 + rng.random(state_dim)).tolist(),
        },
        "action": {"q01": low.tolist(), "q99": high.tolist()},
    }


@dataclass
class Exported:
    recipe: str
    policy: VLAPolicy
    checkpoint: Path
    export: Path


def export_with_cli(checkpoint: Path, out: Path, *extra: str) -> str:
    result = CliRunner().invoke(
        app, ["export", "--checkpoint", str(checkpoint), "--out", str(out), *extra]
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="session", params=EXPORTABLE)
def exported(request, tmp_path_factory) -> Exported:
    """Each exportable recipe (tiny), saved and exported through the CLI with int8."""
    import torch

    from embodied_mm.policies import make_policy

    torch.manual_seed(0)
    recipe = request.param
    root = tmp_path_factory.mktemp(recipe)
    policy = make_policy(recipe, size="tiny", stats=stats(), device="cpu").eval()
    policy.save_pretrained(root / "ckpt")
    export_with_cli(root / "ckpt", root / "onnx", "--quantize", "int8")
    return Exported(recipe, policy, root / "ckpt", root / "onnx")


@pytest.fixture(scope="session")
def exported_chunk(tmp_path_factory) -> Exported:
    """The chunk recipe alone, for the runtime tests that need one policy."""
    import torch

    from embodied_mm.policies import make_policy

    torch.manual_seed(1)
    root = tmp_path_factory.mktemp("chunk-runtime")
    policy = make_policy("vla-chunk", size="tiny", device="cpu").eval()
    policy.save_pretrained(root / "ckpt")
    export_with_cli(root / "ckpt", root / "onnx")
    return Exported("vla-chunk", policy, root / "ckpt", root / "onnx")


def random_obs(policy_cfg, batch: int, seed: int, tasks: list[str] | None = None) -> dict:
    rng = np.random.default_rng(seed)
    s = policy_cfg.image_size
    obs = {
        f"observation.images.{c}": rng.integers(0, 256, (batch, s, s, 3), dtype=np.uint8)
        for c in policy_cfg.cameras
    }
    obs["observation.state"] = rng.normal(size=(batch, policy_cfg.state_dim)).astype(np.float32)
    words = ["pick", "up", "the", "red", "cube", "and", "lift", "it", "place", "on", "green"]
    obs["task"] = tasks or [
        " ".join(rng.choice(words, size=int(rng.integers(1, 12)))) for _ in range(batch)
    ]
    return obs


def torch_predict(policy: VLAPolicy, obs: dict) -> np.ndarray:
    import torch

    batch = {k: v if k == "task" else torch.from_numpy(v) for k, v in obs.items()}
    return policy.predict_chunk(batch).numpy()
