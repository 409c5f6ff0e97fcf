"""The model benchmark runs and reports sane fields (no timing assertions)."""

import math

import torch

from embodied_mm.model.benchmark import bench_policy, format_table, head_comparison
from embodied_mm.model.modeling_vla import VLAPolicy
from tests.model.helpers import tiny_config


def test_bench_rows_table_and_head_comparison():
    rows = []
    for name, head in (("vla-chunk", "chunk"), ("vla-discrete", "discrete"), ("vla-flow", "flow")):
        torch.manual_seed(0)
        policy = VLAPolicy(tiny_config(head, "qwen2"), device="cpu")
        row = bench_policy(name, policy, iters=3)
        assert row.params == policy.num_parameters() > 0
        assert row.prefix_tokens > 2 * 4  # text + 2 cameras × 4 patches + state
        assert 0 < row.p50_ms <= row.p99_ms
        assert row.backbone_ms > 0 and row.compute_ms > 0 and math.isfinite(row.overhead_pct)
        assert math.isfinite(row.overhead_p10_pct)
        assert row.actions_per_s == policy.config.chunk_size / (row.p50_ms / 1e3)
        rows.append(row)
    table = format_table(rows)
    assert table.count("\n") == 4 and "vla-flow" in table
    assert "ratio" in head_comparison(rows)
    assert head_comparison(rows[2:]) is None
