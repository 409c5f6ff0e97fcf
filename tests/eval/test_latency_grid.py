"""``bench chunking``: one evaluation per mode x latency on the same seeds, the cell's
latency as the executor sees it, the tables and plot, and an interrupted grid read back."""

from __future__ import annotations

import json
import shutil

import pytest

from embodied_mm.errors import UsageError
from embodied_mm.eval.latency_grid import cell_control, run_latency_grid
from tests.eval.test_rtc_eval import rtc_checkpoint  # noqa: F401  (fixture)

ENV_ID = "embodied_mm/ReachObject-v0"


def test_a_latency_becomes_control_steps_and_the_refill_covers_it():
    assert cell_control("open_loop", 0, 20.0, 4).latency == 0
    assert cell_control("ensemble", 200, 20.0, 4).as_dict() == {
        "mode": "ensemble", "hz": 20.0, "latency_steps": 4}  # fmt: skip
    assert cell_control("async", 0, 20.0, 4).as_dict()["latency_steps"] == 0
    rtc = cell_control("rtc", 300, 20.0, 4)
    assert (rtc.latency, rtc.refill_at) == (6, 6)  # asks early enough to last 6 steps


@pytest.mark.slow
def test_grid_runs_every_cell_then_reads_an_interrupted_one_back(tmp_path, rtc_checkpoint):  # noqa: F811
    out = tmp_path / "grid"
    modes, latencies = ["open_loop", "rtc"], [0, 100]
    grid = run_latency_grid(rtc_checkpoint, [ENV_ID], 1, out, modes, latencies, num_envs=1)
    cells = {(c["mode"], c["latency_ms"]): c for c in grid["cells"]}
    assert set(cells) == {(m, ms) for m in modes for ms in latencies}
    # open loop at 100 ms waits 2 steps for each chunk of 8: 6 cycles of 10 steps in the 60
    # of the episode, 12 held; rtc keeps playing while it waits
    blocked = json.loads((out / cells[("open_loop", 100)]["eval_info"]).read_text())
    assert blocked["control"]["latency_steps"] == 2
    assert blocked["tasks"][0]["per_episode"][0]["steps"] == 60
    assert blocked["tasks"][0]["interventions"]["watchdog_hold"] == 12
    for ms in latencies:
        rtc = json.loads((out / cells[("rtc", ms)]["eval_info"]).read_text())
        assert "watchdog_hold" not in rtc["tasks"][0]["interventions"]
    for c in grid["cells"]:
        assert c["episodes"] == 1 and c["joint_rms_jerk"] is not None
    assert (out / "grid.svg").read_text().startswith("<svg")
    assert "| rtc | 100 ms |" in (out / "grid.md").read_text()
    # interrupted: one cell lost; the rest is read back without the policy (it is gone)
    shutil.rmtree(out / "cells" / "rtc-100ms")
    with pytest.raises(UsageError, match="does not exist"):
        run_latency_grid(tmp_path / "gone", [ENV_ID], 1, out, modes, latencies, num_envs=1)
    again = run_latency_grid(rtc_checkpoint, [ENV_ID], 1, out, modes, latencies, num_envs=1)
    assert again["cells"] == grid["cells"]


def test_bad_modes_and_latencies_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown mode"):
        run_latency_grid(tmp_path, [ENV_ID], 1, tmp_path, ["fast"])
    with pytest.raises(UsageError, match="latencies must be ms"):
        run_latency_grid(tmp_path, [ENV_ID], 1, tmp_path, ["rtc"], [-5])
