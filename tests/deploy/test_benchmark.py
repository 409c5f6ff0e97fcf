"""``embodied-mm bench deploy``'s round-trip part: both servers as real processes."""

import numpy as np
import pytest

from embodied_mm.deploy.benchmark import (
    ZerosPolicy,
    measure_round_trips,
    round_trip_table,
)
from embodied_mm.deploy.client import PolicyClient, ServerError
from embodied_mm.deploy.server import PolicyServer, ServerThread
from embodied_mm.runtime.inference import LocalPolicy
from tests.deploy.clients import obs


def test_zeros_policy_is_served_with_the_real_policy_schema(stats_checkpoint):
    like = LocalPolicy.from_checkpoint(stats_checkpoint, device="cpu")
    zeros = PolicyServer(ZerosPolicy(like), "127.0.0.1", 0)
    assert zeros.metadata == PolicyServer(like, "127.0.0.1", 0).metadata  # incl. state range
    with ServerThread(zeros) as st:
        client = PolicyClient(st.url)
        reply = client.infer(obs())
        assert np.array_equal(reply["actions"], np.zeros((8, 7), np.float32))
        with pytest.raises(ServerError, match="outside the policy's state range"):
            client.infer(obs(**{"observation.state": np.full(15, 1e6, np.float32)}))
        client.close()


@pytest.mark.slow
def test_round_trips_report_model_queue_and_overhead_per_policy(stats_checkpoint):
    results = measure_round_trips(stats_checkpoint, rounds=2, n=10)
    assert set(results) == {"zeros", "tiny"}
    for r in results.values():
        assert r["rounds"] == 2 and r["requests"] == 20
        for key in ("rtt", "model", "queue", "decode", "overhead"):
            assert r[f"{key}_p50_ms"] >= 0
    table = round_trip_table(results)
    assert table[0].startswith("| policy | round trip p50 | model p50 | queue p50 | decode p50")
    assert table[2].startswith("| zeros |") and "p50 ≤ 0.7 ms" in table[2]
    assert table[3].startswith("| tiny |")
