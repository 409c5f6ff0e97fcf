"""report.html from a run directory: what it holds, and one-line errors for bad runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.errors import UsageError
from embodied_mm.report.html import write_report


def _episode_seeds(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'class="episode \w+" data-seed="(\d+)"', page)]


def test_plain_run_report_lists_failures_first_with_relative_clips(plain_run: Path) -> None:
    page = write_report(plain_run).read_text()
    assert page.count("<tr>") - page.count("<thead><tr>") >= 1
    tasks = re.search(r'<table id="tasks">.*?</table>', page, re.S).group(0)
    assert tasks.count("<tr>") == 2  # header + one task
    assert "40%" in tasks  # 2 of 5
    # failures first (those with clips before those without), then successes
    assert _episode_seeds(page) == [100001, 100003, 100004, 100000, 100002]
    srcs = re.findall(r'<video [^>]*src="([^"]+)"', page)
    assert srcs == ["videos/clips/episode_100001.mp4", "videos/clips/episode_100003.mp4",
                    "videos/clips/episode_100000.mp4"]  # fmt: skip
    assert all((plain_run / s).is_file() for s in srcs)
    assert "pick up the block &lt;100001&gt;" in page  # the instruction, escaped
    assert "reach the block" in page and "grasp" in page  # the plan text
    assert "<script" not in page and "http" not in page  # self-contained, offline


def test_suite_report_has_factor_tables_and_one_point_per_level(suite_run: Path) -> None:
    page = write_report(suite_run).read_text()
    tables = re.findall(r'<table id="factor-\d+">.*?</table>', page, re.S)
    # camera_shift, lighting: the baseline as level 0, then their levels
    assert [t.count("<tr>") - 1 for t in tables] == [3, 4]
    assert all("baseline" in t for t in tables)
    svgs = re.findall(r'<figure class="plot" id="plot-\d+"><svg.*?</svg>', page, re.S)
    assert len(svgs) == 2
    points = [re.search(r'<g id="success-points">(.*?)</g>\s*</g>', s, re.S) for s in svgs]
    assert [p.group(1).count("<use ") for p in points] == [3, 4]
    # episodes come from each cell's eval_info.json, clips relative to the report
    srcs = re.findall(r'<video [^>]*src="([^"]+)"', page)
    assert len(srcs) == (1 + 2 + 3) + (1 + 2)  # level k fails k episodes; the baseline none
    assert all((suite_run / s).is_file() for s in srcs)


def test_cli_report_rebuilds_and_bad_runs_are_one_line_errors(plain_run: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(plain_run)])
    assert result.exit_code == 0, result.output
    assert (plain_run / "report.html").is_file()

    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["report", str(empty)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "neither eval_info.json" in result.output

    (plain_run / "eval_info.json").write_text("{not json")
    result = runner.invoke(app, ["report", str(plain_run)])
    assert result.exit_code == 2 and "not a readable eval_info.json" in result.output
    assert result.output.strip().count("\n") == 0


@pytest.mark.parametrize("content, message", [
    ([1, 2], "holds a JSON object"),
    ({"tasks": [{"env_id": "x"}]}, "lacks episodes, successes, ci95"),
    ({"tasks": "nope"}, "needs a 'tasks' list"),
])  # fmt: skip
def test_garbled_eval_info_names_the_problem(tmp_path: Path, content, message: str) -> None:
    (tmp_path / "eval_info.json").write_text(json.dumps(content))
    with pytest.raises(UsageError, match=message):
        write_report(tmp_path)


def test_garbled_suite_names_the_problem(suite_run: Path) -> None:
    suite = json.loads((suite_run / "suite.json").read_text())
    del suite["cells"][0]["ci95"]
    (suite_run / "suite.json").write_text(json.dumps(suite))
    with pytest.raises(UsageError, match="a cell lacks ci95"):
        write_report(suite_run)
