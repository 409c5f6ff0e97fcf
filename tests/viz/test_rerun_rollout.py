"""``rollout --display rerun --rrd PATH``: a recording Rerun's own tools read back, with every
stream on the one timeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from tests.viz.rrd_tools import rows_per_entity, verify

pytest.importorskip("rerun", reason="rerun-sdk is the [viz] extra")
ENV = "embodied_mm/ReachObject-v0"


def test_scripted_rollout_writes_a_verified_rrd(tmp_path: Path) -> None:
    rrd = tmp_path / "run.rrd"
    summary = tmp_path / "summary.json"
    result = CliRunner().invoke(app, ["rollout", "--env", ENV, "--episodes", "2", "--seed", "3",
                                      "--display", "rerun", "--rrd", str(rrd),
                                      "--summary", str(summary)])  # fmt: skip
    assert result.exit_code == 0, result.output
    verify(rrd)
    steps = sum(r["steps"] for r in json.loads(summary.read_text())["per_episode"])
    rows, columns = rows_per_entity(rrd)
    for entity in ("/camera/front", "/camera/wrist", "/state", "/action/raw",
                   "/action/filtered", "/safety/interventions"):  # fmt: skip
        assert rows[entity] == steps, (entity, rows)
    assert rows["/task"] == 2 and rows["/episode"] == 2  # each episode's instruction
    assert any("EncodedImage" in c for c in columns["/camera/front"])
    assert "/plan" not in rows  # the scripted expert has no plan text


def test_display_must_be_known_and_rrd_must_end_in_rrd(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["rollout", "--env", ENV, "--episodes", "1", "--display", "web"])
    assert bad.exit_code == 2 and "--display 'web': use one of none, rerun" in bad.output
    bad = runner.invoke(app, ["rollout", "--env", ENV, "--episodes", "1",
                              "--rrd", str(tmp_path / "run.txt")])  # fmt: skip
    assert bad.exit_code == 2 and "must end in .rrd" in bad.output


def test_a_viewer_that_cannot_start_is_a_one_line_error(monkeypatch, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["rollout", "--env", ENV, "--episodes", "1", "--display", "rerun"]
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "needs a display for the viewer" in result.output
    assert "--rrd PATH" in result.output
    # a display that is not there: the real viewer starts, fails, and says why
    monkeypatch.setenv("DISPLAY", ":97")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "the Rerun viewer did not start (" in result.output and "use --rrd" in result.output
    assert result.output.strip().count("\n") == 0
