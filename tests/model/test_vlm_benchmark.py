"""``bench model`` on ``vlm`` policies: rows with sane fields (no timing assertions)."""

import math

import pytest
import torch

from embodied_mm.model.benchmark import bench_policy
from embodied_mm.model.modeling_vla import VLAPolicy
from tests.model.vlm_helpers import VLM_KINDS, tiny_vlm_config


@pytest.mark.parametrize("family", VLM_KINDS)
def test_bench_rows_of_vlm_policies(family):
    for head in ("chunk", "flow"):
        torch.manual_seed(0)
        policy = VLAPolicy(tiny_vlm_config(family, head), device="cpu")
        row = bench_policy(f"vlm-{family}-{head}", policy, iters=3)
        images = 2 * policy.backbone.image_tokens
        assert row.prefix_tokens > images + 1  # the prompt (images, format, task) + state
        assert 0 < row.p50_ms <= row.p99_ms and 0 < row.backbone_ms <= row.compute_ms * 1.5
        assert math.isfinite(row.overhead_pct) and math.isfinite(row.overhead_p10_pct)
