"""A simulated frame is stamped when read: the world stands still between steps."""

import time

from embodied_mm.runtime.adapters.sim import SimRobot
from embodied_mm.runtime.safety import SafetyConfig, SafetyFilter


def test_a_frame_read_long_after_its_step_is_not_stale():
    with SimRobot("reach", seed=0) as robot:
        time.sleep(0.4)  # a policy loading, a warm-up inference: the sim has not moved
        t_read = time.monotonic()
        obs = robot.get_observation()
        assert min(obs.stamps.values()) >= t_read
        safety = SafetyFilter(SafetyConfig(max_obs_age_s=0.25), hz=20.0)
        hold = robot.hold_action()
        out = safety.filter(hold, hold, obs.stamps)
        assert [i.value for i in out.interventions] == []
        # the check still holds what is slow after the read (the robot's case)
        time.sleep(0.3)
        late = safety.filter(hold, hold, obs.stamps)
        assert [i.value for i in late.interventions] == ["stale_observation"]
