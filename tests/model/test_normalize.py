import json

import pytest
import torch

from embodied_mm.model.normalize import (
    STD_FLOOR_REL,
    Normalizer,
    load_stats,
    std_floor,
    unit_stats,
)
from tests.model.helpers import ACTION_HIGH, ACTION_LOW, tiny_stats

MODES = {"observation.state": "mean_std", "action": "q01_q99"}
DIMS = {"observation.state": 5, "action": 3}


def test_state_round_trip_and_scale():
    norm = Normalizer(tiny_stats(), MODES, DIMS)
    x = torch.randn(6, 5) * 3
    y = norm.normalize("observation.state", x)
    mean = torch.tensor(tiny_stats()["observation.state"]["mean"])
    std = torch.tensor(tiny_stats()["observation.state"]["std"])
    assert torch.allclose(y, (x - mean) / std, atol=1e-5)
    assert torch.allclose(norm.unnormalize("observation.state", y), x, atol=1e-5)


def test_action_maps_bounds_to_unit_range_and_clips():
    norm = Normalizer(tiny_stats(), MODES, DIMS)
    low, high = torch.tensor(ACTION_LOW), torch.tensor(ACTION_HIGH)
    assert torch.allclose(norm.normalize("action", low), -torch.ones(3))
    assert torch.allclose(norm.normalize("action", high), torch.ones(3))
    inside = low + (high - low) * torch.rand(10, 3)
    assert torch.allclose(
        norm.unnormalize("action", norm.normalize("action", inside)), inside, atol=1e-5
    )
    # Out-of-range values come back clipped to the bounds, whatever the head produced.
    wild = torch.randn(100, 3) * 10
    back = norm.unnormalize("action", wild)
    assert (back >= low - 1e-6).all() and (back <= high + 1e-6).all()
    assert norm.normalize("action", high + 5).max() <= 1.0


def test_min_max_mode_uses_min_max():
    norm = Normalizer(tiny_stats(), {"action": "min_max"}, DIMS)
    low, _ = norm.bounds("action")
    assert torch.allclose(low, torch.tensor(tiny_stats()["action"]["min"]))


def test_unit_stats_are_identity_on_unit_range():
    norm = Normalizer({"action": unit_stats(3)}, {"action": "q01_q99"}, DIMS)
    x = torch.rand(4, 3) * 2 - 1
    assert torch.allclose(norm.normalize("action", x), x, atol=1e-6)


@pytest.mark.parametrize(
    ("stats", "modes", "message"),
    [
        ({}, {"action": "q01_q99"}, "lack feature 'action'"),
        ({"action": {"q01": [0.0] * 3}}, {"action": "q01_q99"}, "lack 'q99'"),
        ({"action": {"q01": [0.0] * 2, "q99": [1.0] * 2}}, {"action": "q01_q99"}, "expected (3,)"),
        ({"action": unit_stats(3)}, {"action": "zscore"}, "unknown normalisation mode"),
    ],
)
def test_bad_stats_fail_clearly(stats, modes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Normalizer(stats, modes, DIMS)


def test_stats_file_round_trip_and_corrupt_file(tmp_path):
    norm = Normalizer(tiny_stats(), MODES, DIMS)
    path = tmp_path / "stats.json"
    norm.save(path)
    assert load_stats(path) == json.loads(json.dumps(tiny_stats()))
    path.write_text('{"action": {"q01": [1, 2')
    with pytest.raises(ValueError, match=r"stats\.json"):
        load_stats(path)


def _state_stats(std: list[float], low: list[float], high: list[float]) -> dict:
    return {"observation.state": {"mean": [0.0] * len(std), "std": std, "min": low, "max": high}}


def test_tiny_std_is_clamped_relative_to_the_widest_range():
    # As in the shipped checkpoint: joints span ~2.6 rad, a quaternion component has std 0.0013.
    stats = _state_stats([0.46, 0.0013, 0.0], [-0.53, -0.0079, 0.2], [2.12, 0.0079, 0.2])
    norm = Normalizer(stats, {"observation.state": "mean_std"}, {"observation.state": 3})
    widest = 2.12 - (-0.53)
    shift = torch.full((1, 3), STD_FLOOR_REL * widest)  # 1% of the widest range, every dim
    z = norm.normalize("observation.state", shift)
    assert z.abs().max() <= 1.0 + 1e-5  # was ~20 std in the quaternion dim before the floor
    assert torch.isfinite(z).all()  # a constant dimension (std 0) divides by the floor
    # A dimension above the floor keeps its own std, and the round trip stays exact.
    assert z[0, 0] == pytest.approx(STD_FLOOR_REL * widest / 0.46, rel=1e-5)
    x = torch.randn(8, 3)
    assert torch.allclose(
        norm.unnormalize("observation.state", norm.normalize("observation.state", x)), x, atol=1e-5
    )


def test_std_floor_without_min_max_is_a_tiny_epsilon():
    assert std_floor({"mean": [0.0], "std": [0.0]}) == pytest.approx(1e-6)
    assert std_floor({"min": [-1.0, 0.0], "max": [1.0, 0.5]}) == pytest.approx(2.0 * STD_FLOOR_REL)
