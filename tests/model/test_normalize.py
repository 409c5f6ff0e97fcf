import json

import pytest
import torch

from embodied_mm.model.normalize import Normalizer, load_stats, unit_stats
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
