"""ONNX export of ``vlm`` policies: PaliGemma's graph (image path, prompt, LM, head) matches
PyTorch in fp32; Qwen2-VL's with a fixed batch; SmolVLM's cannot be traced, and says why."""

import numpy as np
import pytest
import torch

from embodied_mm.errors import UsageError
from embodied_mm.export.onnx_export import export_checkpoint
from embodied_mm.export.ort_policy import OrtPolicy
from embodied_mm.model.modeling_vla import VLAPolicy
from tests.model.helpers import make_batch, obs_only, tiny_stats
from tests.model.vlm_helpers import tiny_vlm_config


def saved(family: str, head: str, directory):
    torch.manual_seed(0)
    policy = VLAPolicy(tiny_vlm_config(family, head), tiny_stats(), device="cpu").eval()
    with torch.no_grad():  # off the init: a graph that dropped a weight would show
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    policy.save_pretrained(directory)
    return policy


def numpy_obs(batch: int, seed: int) -> dict:
    obs = obs_only(make_batch(batch, seed=seed))
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in obs.items()}


@pytest.mark.parametrize(("family", "head", "batch"),
                         [("paligemma", "chunk", None), ("paligemma", "flow", None),
                          ("qwen2_vl", "chunk", 1), ("qwen2_5_vl", "chunk", 1)])  # fmt: skip
def test_fp32_graph_matches_pytorch(family, head, batch, tmp_path):
    policy = saved(family, head, tmp_path / "policy")
    export_checkpoint(tmp_path / "policy", tmp_path / "onnx", batch=batch)
    ort = OrtPolicy(tmp_path / "onnx")
    obs = numpy_obs(3, seed=5)  # instructions of different lengths: a padded batch
    ours = policy.predict_chunk(obs_only(make_batch(3, seed=5))).numpy()
    np.testing.assert_allclose(ort.predict_chunk(obs), ours, atol=1e-4, rtol=0)
    # the export's prompt is the VLM's: image tokens and format around the instruction
    ids, _ = ort.encode_tasks(["pick the red cube"])
    assert (ids == policy.backbone.image_token_id).sum() == 2 * policy.backbone.image_tokens


def test_smolvlm_and_unfixed_qwen2_vl_fail_saying_why(tmp_path):
    saved("smolvlm", "chunk", tmp_path / "smol")
    with pytest.raises(UsageError, match=r"cannot export a 'smolvlm' VLM .*bucketize.*: paligemma"):
        export_checkpoint(tmp_path / "smol", tmp_path / "out")
    saved("qwen2_vl", "chunk", tmp_path / "qwen")
    with pytest.raises(UsageError, match=r"'qwen2_vl' VLM policy exports only with .*--batch N"):
        export_checkpoint(tmp_path / "qwen", tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.onnx"))
