"""The accepted state range: derived from the policy's stats, published, and enforced."""

import numpy as np
import pytest

from embodied_mm.deploy.client import PolicyClient, ServerError
from embodied_mm.deploy.schema import ObsSchema, SchemaError
from embodied_mm.deploy.server import PolicyServer, ServerThread
from embodied_mm.deploy.state_range import (
    FLOAT32_MAX,
    policy_state_stats,
    state_range_from_stats,
)
from embodied_mm.runtime.inference import LocalPolicy
from tests.deploy.clients import obs


@pytest.fixture(scope="module")
def policy(stats_checkpoint):
    return LocalPolicy.from_checkpoint(stats_checkpoint, device="cpu")


def test_range_is_min_max_widened_by_the_span_and_at_least_one_unit():
    stats = {"observation.state": {"min": [0.0, -10.0, 2.0], "max": [0.5, 10.0, 2.0]}}
    low, high = state_range_from_stats(stats, 3)
    np.testing.assert_allclose(low, [-1.0, -30.0, 1.0])  # spans 0.5 (→ 1), 20, 0 (→ 1)
    np.testing.assert_allclose(high, [1.5, 30.0, 3.0])


def test_range_falls_back_to_quantiles_then_mean_std():
    q = {"observation.state": {"q01": [-2.0], "q99": [2.0], "mean": [0.0], "std": [9.0]}}
    np.testing.assert_allclose(state_range_from_stats(q, 1), ([-6.0], [6.0]))
    ms = {"observation.state": {"mean": [1.0], "std": [0.5]}}
    # mean ± 3 std = [-0.5, 2.5], widened by its span 3 on each side
    np.testing.assert_allclose(state_range_from_stats(ms, 1), ([-3.5], [5.5]))


def test_no_state_stats_means_no_range():
    assert state_range_from_stats(None, 3) is None
    assert state_range_from_stats({"action": {"min": [0.0]}}, 3) is None


def test_stats_of_the_wrong_size_are_an_error():
    with pytest.raises(ValueError, match=r"observation.state.min must be 3 finite numbers"):
        state_range_from_stats({"observation.state": {"min": [0, 1], "max": [1, 2]}}, 3)


def test_range_never_exceeds_float32():
    low, high = state_range_from_stats({"observation.state": {"min": [-2e38], "max": [2e38]}}, 1)
    assert low[0] == -FLOAT32_MAX and high[0] == FLOAT32_MAX


def test_placeholder_stats_of_a_policy_without_a_dataset_mean_no_range(tiny_checkpoint):
    # unit stats say nothing about the robot: a real arm's joint at -3.07 rad must be served
    untrained = LocalPolicy.from_checkpoint(tiny_checkpoint, device="cpu")
    assert state_range_from_stats(policy_state_stats(untrained), 15) is None
    server = PolicyServer(untrained, "127.0.0.1", 0)
    assert server.metadata["state_range"] is None
    server.schema.validate({**obs(**{"observation.state": np.full(15, -3.07)})})


def test_the_served_policy_range_comes_from_its_saved_stats(policy):
    assert policy_state_stats(policy) is policy.policy.normalizer.stats
    server = PolicyServer(policy, "127.0.0.1", 0)
    assert server.metadata["state_range"] == {"low": [-3.0] * 15, "high": [3.0] * 15}
    assert ObsSchema.from_metadata(server.metadata) == server.schema


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (np.full(15, 1e300), "observation.state[0] = 1e+300 is outside the policy's state range"),
        (
            np.r_[np.zeros(4), 3e38, np.zeros(10)].astype(np.float32),
            "observation.state[4] = 3e+38 is outside the policy's state range [-3, 3]",
        ),
        (np.r_[np.zeros(14), -3.5], "observation.state[14] = -3.5 is outside"),
        (np.r_[np.inf, np.zeros(14)].astype(np.float32), "observation.state[0] is inf"),
    ],
)
def test_out_of_range_state_is_rejected_naming_field_and_range(policy, state, expected):
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0)) as st:
        client = PolicyClient(st.url)
        with pytest.raises(ServerError, match=r"^error: ") as info:
            client.infer(obs(**{"observation.state": state}))
        assert expected in str(info.value)
        edge = np.r_[np.full(7, 3.0), np.full(8, -3.0)]  # the bounds themselves are inside
        assert client.infer(obs(**{"observation.state": edge}))["actions"].shape == (8, 7)
        client.close()


def test_without_stats_a_state_beyond_float32_is_still_rejected():
    schema = ObsSchema(cameras=(), state_dim=2)
    schema.validate({"observation.state": np.array([1e38, -1e38]), "task": ""})
    with pytest.raises(SchemaError, match=r"outside the float32 range .* \[-3.40282e\+38"):
        schema.validate({"observation.state": np.array([0.0, 1e300]), "task": ""})


@pytest.mark.slow
def test_an_exported_policy_gets_the_range_of_its_manifest_stats(stats_checkpoint, tmp_path):
    from embodied_mm.export.onnx_export import export_checkpoint

    export_checkpoint(stats_checkpoint, tmp_path / "onnx")
    exported = LocalPolicy.from_checkpoint(tmp_path / "onnx")
    torch_policy = LocalPolicy.from_checkpoint(stats_checkpoint, device="cpu")
    assert policy_state_stats(exported) == policy_state_stats(torch_policy)
    served = PolicyServer(exported, "127.0.0.1", 0).metadata["state_range"]
    assert served == PolicyServer(torch_policy, "127.0.0.1", 0).metadata["state_range"]
