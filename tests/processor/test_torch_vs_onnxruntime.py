"""The pipeline round trip on both runtimes: raw robot observation → model inputs → model
outputs → robot action, from one saved pipeline, in PyTorch and in onnxruntime."""

import json

import numpy as np
import pytest
import torch

from embodied_mm.export.onnx_export import export_checkpoint
from embodied_mm.export.ort_policy import OrtPolicy
from embodied_mm.processor.core import PROCESSOR_FILE
from tests.export.conftest import stats


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from embodied_mm.policies import make_policy

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("roundtrip")
    policy = make_policy("vla-chunk", size="tiny", stats=stats(), device="cpu").eval()
    policy.save_pretrained(root / "ckpt")
    export_checkpoint(root / "ckpt", root / "onnx")
    return policy, root / "ckpt", root / "onnx"


def raw_observation(seed: int) -> dict:
    """What a robot sends: uint8 frames at the camera size, the state in robot units (with
    an observation-history axis), one instruction string for the batch."""
    rng = np.random.default_rng(seed)
    obs = {
        f"observation.images.{c}": rng.integers(0, 256, (3, 2, 128, 128, 3), dtype=np.uint8)
        for c in ("front", "wrist")
    }
    obs["observation.state"] = rng.normal(size=(3, 2, 15)).astype(np.float32)
    obs["task"] = "pick up the red cube and lift it"
    return obs


def test_both_runtimes_read_the_same_saved_pipeline(exported):
    _, ckpt, onnx = exported
    saved = json.loads((ckpt / PROCESSOR_FILE).read_text())
    assert json.loads((onnx / PROCESSOR_FILE).read_text()) == saved
    ort = OrtPolicy(onnx, precision="fp32")
    host = [
        s["name"] for s in saved["steps"] if s["name"] in ("observation_check", "tokenize_task")
    ]
    assert [s.name for s in ort.processor.steps] == host  # tensor steps are in the graph


def test_round_trip_gives_the_same_robot_actions(exported):
    policy, _, onnx = exported
    ort = OrtPolicy(onnx, precision="fp32")
    for seed in range(3):
        obs = raw_observation(seed)
        torch_obs = {k: v if k == "task" else torch.from_numpy(v) for k, v in obs.items()}
        ref = policy.predict_chunk(torch_obs).numpy()  # (B, K, D) robot units
        got = ort.predict_chunk(obs)
        assert got.shape == ref.shape == (3, 8, 7)
        # fp32 on both sides; onnxruntime fuses and reorders float ops (attention, GELU,
        # LayerNorm), so the results agree to float rounding, not bit for bit. Actions span
        # about [-2, 3] here; 1e-5 is ~40 float32 ulps at that magnitude.
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
