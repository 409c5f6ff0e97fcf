import pytest

from embodied_mm.eval.stats import wilson_interval


@pytest.mark.parametrize(
    ("s", "n", "lo", "hi"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (19, 20, 0.7639, 0.9911),
    ],
)
def test_wilson_interval_matches_reference_values(s, n, lo, hi):
    got = wilson_interval(s, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_bad_counts_fail():
    with pytest.raises(ValueError, match="at least one episode"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="outside"):
        wilson_interval(3, 2)
