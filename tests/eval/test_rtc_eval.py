"""``eval`` and ``rollout`` with ``--mode rtc`` in simulated time: the same episode through
both, and each episode's smoothness figures in its record (eval_info.json's per_episode)."""

import pytest
import torch

from embodied_mm.features import ACTION, OBS_STATE
from embodied_mm.model.normalize import unit_stats
from embodied_mm.policies.recipes import make_policy
from embodied_mm.runtime.controller import ControlSpec
from tests.eval.test_same_episode import same, via_eval, via_rollout


@pytest.fixture(scope="module")
def rtc_checkpoint(tmp_path_factory):
    """The tiny chunk recipe built for prefix conditioning (random init)."""
    torch.manual_seed(0)  # random init: the same weights every run
    path = tmp_path_factory.mktemp("rtc") / "policy"
    stats = {OBS_STATE: unit_stats(15), ACTION: unit_stats(7)}
    make_policy("vla-chunk", stats=stats, head={"rtc_max_delay": 3}).save_pretrained(path)
    return path


@pytest.mark.slow
def test_rtc_is_the_same_episode_through_rollout_and_eval_with_smoothness(rtc_checkpoint):
    control = ControlSpec("rtc", latency_steps=2, refill_at=3)
    assert control.as_dict() == {"mode": "rtc", "hz": 20.0, "refill_at": 3, "latency_steps": 2}
    (r,) = via_rollout(rtc_checkpoint, control)
    (e,) = via_eval(rtc_checkpoint, control)
    same(r, e)
    figures = e["smoothness"]
    # 60 steps, a chunk of 8 asked for at 3 queued and arriving 2 steps later: one every 5
    assert figures["boundaries"] == 11
    assert figures["boundary_ratio"] is not None and figures["boundary_ratio"] > 0
    assert figures["joint_rms_jerk"] is not None and figures["joint_rms_jerk"] > 0
    # open loop, the same policy: a boundary every 8 steps, where a fresh chunk takes over
    (o,) = via_eval(rtc_checkpoint, ControlSpec("open_loop"))
    assert o["smoothness"]["boundaries"] == 60 // 8
