"""The RTC delay estimator: a robust percentile of measured inference times, in steps."""

import pytest

from embodied_mm.runtime.delay import DelayEstimator


def test_single_slow_outlier_is_ignored():
    est = DelayEstimator(hz=20.0, max_steps=6, window=30)
    for _ in range(29):
        est.observe(0.12)  # 120 ms at 20 Hz: 2.4 steps -> 3
    assert est.steps() == 3
    est.observe(2.0)  # one 2 s hiccup
    assert est.steps() == 3
    for _ in range(3):
        est.observe(0.12)
    assert est.steps() == 3  # and it leaves the window unnoticed


def test_sustained_change_is_followed_both_ways():
    est = DelayEstimator(hz=20.0, max_steps=6, window=30)
    for _ in range(30):
        est.observe(0.04)
    assert est.steps() == 1
    for _ in range(10):  # the policy got slower: 210 ms = 4.2 steps -> 5
        est.observe(0.21)
    assert est.steps() == 5
    for _ in range(30):  # and fast again
        est.observe(0.04)
    assert est.steps() == 1


def test_clamped_to_the_bounds_and_safe_before_any_measurement():
    est = DelayEstimator(hz=10.0, max_steps=4, min_steps=1)
    assert est.steps() == 4  # unknown: assume the most the old plan can cover
    assert est.delay_s() is None
    est.observe(0.0)
    assert est.steps() == 1  # the asking step's own action is already the old plan's
    for _ in range(30):
        est.observe(3.0)
    assert est.steps() == 4
    est.reset()
    est.observe(0.1)  # exactly one period is one step, not two after float rounding
    assert est.steps() == 1


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_a_bad_measurement_is_refused(bad):
    with pytest.raises(ValueError, match="finite duration"):
        DelayEstimator(hz=10.0, max_steps=4).observe(bad)
