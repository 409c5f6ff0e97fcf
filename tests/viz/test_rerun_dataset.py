"""``dataset show --display rerun --rrd PATH``: one recorded episode in Rerun."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from tests.data.conftest import write_synthetic
from tests.viz.rrd_tools import rows_per_entity, verify

pytest.importorskip("rerun", reason="rerun-sdk is the [viz] extra")


def test_dataset_show_sends_one_episode_to_an_rrd(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_synthetic(root, [12, 7], tasks=["lift the red cube", "push"])
    rrd = tmp_path / "ep1.rrd"
    result = CliRunner().invoke(app, ["dataset", "show", str(root), "--episode", "1",
                                      "--display", "rerun", "--rrd", str(rrd)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "episode 1: 7 frames" in result.output
    assert not list(Path.cwd().glob("ds_episode_*.mp4"))  # no video without --out
    verify(rrd)
    rows, _ = rows_per_entity(rrd)
    for entity in ("/camera/front", "/camera/wrist", "/state", "/action/filtered"):
        assert rows[entity] == 7, (entity, rows)
    assert "/action/raw" not in rows  # a dataset holds what was sent, not the policy's raw
    assert rows["/task"] == 1 and rows["/episode"] == 1


def test_dataset_show_with_rrd_and_out_writes_both(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_synthetic(root, [5])
    rrd, mp4 = tmp_path / "ep.rrd", tmp_path / "ep.mp4"
    result = CliRunner().invoke(app, ["dataset", "show", str(root), "--rrd", str(rrd),
                                      "--out", str(mp4)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert rrd.stat().st_size > 0 and mp4.stat().st_size > 0
