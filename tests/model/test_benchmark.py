"""The model benchmark: its timer against a clock that moves by known amounts, its figures
against samples worked out by hand, and a run on every tiny head."""

import pytest
import torch

from embodied_mm.model.benchmark import (
    bench_policy,
    format_table,
    head_comparison,
    row_from_samples,
    time_ms,
)
from embodied_mm.model.modeling_vla import VLAPolicy
from tests.model.helpers import tiny_config


class SteppedClock:
    """A clock (seconds) that each call of the timed function moves by the next duration."""

    def __init__(self, durations_ms: list[float]) -> None:
        self.now = 100.0
        self.durations = iter(durations_ms)
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def work(self) -> None:
        self.calls += 1
        self.now += next(self.durations) / 1e3


def test_time_ms_times_each_call_after_the_untimed_warmup():
    clock = SteppedClock([500.0, 500.0, 4.0, 7.5, 2.25])  # two warm-up calls, then three
    samples = time_ms(clock.work, torch.device("cpu"), iters=3, warmup=2, clock=clock)
    assert clock.calls == 5
    assert samples == pytest.approx([4.0, 7.5, 2.25], abs=1e-6)


def test_row_figures_from_known_samples():
    """Samples (ms) and the figures they give, worked out by hand: linear percentiles of
    lat [9, 10, 11, 12, 30] are p10 9.4, p50 11, p99 29.28; of compute [7..11] p10 7.4, p50 9."""
    lat = [12.0, 10.0, 11.0, 30.0, 9.0]
    backbone = [5.0, 4.0, 6.0, 3.0, 100.0]  # p50 5
    compute = [8.0, 10.0, 9.0, 11.0, 7.0]
    row = row_from_samples("vla-chunk", 1234, 40, 8, lat, backbone, compute)
    assert (row.recipe, row.params, row.prefix_tokens) == ("vla-chunk", 1234, 40)
    assert row.p50_ms == pytest.approx(11.0)
    assert row.p99_ms == pytest.approx(29.28)
    assert row.backbone_ms == pytest.approx(5.0)
    assert row.compute_ms == pytest.approx(9.0)
    assert row.actions_per_s == pytest.approx(727.2727, rel=1e-6)  # 8 actions per 11 ms
    assert row.overhead_pct == pytest.approx(22.2222, rel=1e-5)  # 11 ms over 9 ms
    assert row.overhead_p10_pct == pytest.approx(27.0270, rel=1e-5)  # 9.4 ms over 7.4 ms
    line = format_table([row]).splitlines()[2]
    assert line == (
        "| vla-chunk | 0.00M | 40 | 11.00 | 29.28 | 727 | 5.00 | 9.00 | +22.2% | +27.0% |"
    )


def test_head_comparison_reads_the_chunk_and_discrete_rows():
    chunk = row_from_samples("vla-chunk", 1, 1, 8, [10.0], [1.0], [5.0])  # 800 actions/s
    discrete = row_from_samples("vla-discrete", 1, 1, 1, [5.0], [1.0], [5.0])  # 200 actions/s
    assert head_comparison([chunk, discrete]) == (
        "chunk vs discrete (same backbone): 800 vs 200 actions/s, ratio 4.0x"
    )
    assert head_comparison([chunk]) is None


def test_bench_runs_every_tiny_head():
    rows = []
    for name, head in (("vla-chunk", "chunk"), ("vla-discrete", "discrete"), ("vla-flow", "flow")):
        torch.manual_seed(0)
        policy = VLAPolicy(tiny_config(head, "qwen2"), device="cpu")
        row = bench_policy(name, policy, iters=3)
        assert row.recipe == name and row.params == policy.num_parameters() > 0
        assert row.prefix_tokens > 2 * 4  # text + 2 cameras × 4 patches + state
        assert 0 < row.p50_ms <= row.p99_ms
        assert row.backbone_ms > 0 and row.compute_ms > 0
        rows.append(row)
    table = format_table(rows)
    assert table.count("\n") == 4 and "vla-flow" in table
