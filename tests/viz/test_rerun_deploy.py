"""``deploy --display rerun --rrd PATH`` on a simulated arm: raw and filtered actions,
interventions and cameras on one timeline, read back with Rerun's own tools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from embodied_mm.policies.recipes import make_policy
from tests.viz.rrd_tools import rows_per_entity, verify

pytest.importorskip("rerun", reason="rerun-sdk is the [viz] extra")


@pytest.mark.slow
def test_deploy_logs_every_step_to_an_rrd(tmp_path: Path) -> None:
    ckpt = tmp_path / "policy"
    make_policy("vla-chunk").save_pretrained(ckpt)
    rrd, out = tmp_path / "deploy.rrd", tmp_path / "out"
    cmd = [sys.executable, "-m", "embodied_mm.cli.main", "deploy", "--robot", "sim:reach",
           "--checkpoint", str(ckpt), "--mode", "open_loop", "--steps", "10", "--episodes", "2",
           "--hz", "200", "--out", str(out), "--display", "rerun", "--rrd", str(rrd)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    verify(rrd)
    summary = json.loads((out / "summary.json").read_text())
    steps = sum(r["steps"] for r in summary)
    rows, _ = rows_per_entity(rrd)
    for entity in ("/camera/front", "/camera/wrist", "/state", "/action/filtered",
                   "/safety/interventions"):  # fmt: skip
        assert rows[entity] == steps, (entity, rows)
    assert 0 < rows["/action/raw"] <= steps  # steps without a fresh action log none
    assert rows["/episode"] == 2 and rows["/task"] >= 1
    total = sum(sum(r["interventions"].values()) for r in summary)
    assert (rows["/safety/events"] > 0) == (total > 0) and rows["/safety/events"] <= total
