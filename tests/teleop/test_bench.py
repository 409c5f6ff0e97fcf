"""`embodied-mm bench teleop` runs end to end on the emulated arms (figures vary by machine)."""

import json

from typer.testing import CliRunner

from embodied_mm.cli.main import app


def test_bench_teleop_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    args = ["bench", "teleop", "--reads", "20", "--trials", "10", "--fps", "30",
            "--record-s", "1", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    for key in ("leader_read", "leader_follower", "gamepad_read"):
        assert 0 < figures[f"{key}_p50_ms"] <= figures[f"{key}_p99_ms"]
    assert figures["record_steps"] == 30  # 1 s at 30 Hz, no episode cut short
    assert figures["record_achieved_hz"] > 0
    assert "keyboard: skipped (stdin is not a terminal)" in result.output
