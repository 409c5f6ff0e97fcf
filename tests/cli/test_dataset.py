"""The dataset CLI commands, run in-process through Typer's runner on real files."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from tests.data.conftest import write_synthetic
from tests.data.test_robomimic import make_robomimic

runner = CliRunner()


@pytest.fixture
def small_dataset(tmp_path):
    root = tmp_path / "ds"
    return root, write_synthetic(root, [12, 7, 15], tasks=["lift the red cube", "push", "push"])


def test_info_and_check(small_dataset):
    root, _ = small_dataset
    out = runner.invoke(app, ["dataset", "info", str(root)])
    assert out.exit_code == 0, out.output
    assert "LeRobot v3.0" in out.output and "episodes: 3  frames: 34" in out.output
    assert "observation.images.front" in out.output and "1: push" in out.output
    out = runner.invoke(app, ["dataset", "check", str(root)])
    assert out.exit_code == 0 and "OK (3 episodes, 34 frames, 2 video files)" in out.output


def test_check_fails_naming_the_corrupt_file(small_dataset):
    root, _ = small_dataset
    bad = root / "videos/observation.images.wrist/chunk-000/file-000.mp4"
    bad.write_bytes(b"\x00" * 100)
    out = runner.invoke(app, ["dataset", "check", str(root)])
    assert out.exit_code == 1
    assert str(bad) in out.output and "1 problem(s)" in out.output


def test_info_on_a_non_dataset_is_a_clear_error(tmp_path):
    out = runner.invoke(app, ["dataset", "info", str(tmp_path)])
    assert out.exit_code == 1 and "meta/info.json: missing" in out.output


def test_import_robomimic_then_show(tmp_path):
    make_robomimic(tmp_path / "lift.hdf5", [4, 5, 3])
    out = runner.invoke(
        app,
        ["dataset", "import-robomimic", str(tmp_path / "lift.hdf5"), "--out", str(tmp_path / "ds"),
         "--task", "lift the cube"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "imported 3 episodes" in out.output
    png = tmp_path / "sheet.png"
    out = runner.invoke(app, ["dataset", "show", str(tmp_path / "ds"), "--episode", "2",
                              "--out", str(png)])  # fmt: skip
    assert out.exit_code == 0 and png.stat().st_size > 0


def test_record_refuses_existing_dataset_without_resume(small_dataset):
    root, _ = small_dataset
    out = runner.invoke(app, ["record", "--env", "embodied_mm/PickLift-v0", "--episodes", "1",
                              "--out", str(root)])  # fmt: skip
    assert out.exit_code != 0 and "--resume" in out.output


def test_bench_data_prints_numbers():
    out = runner.invoke(
        app, ["bench", "data", "--episodes", "2", "--length", "20", "--batches", "2",
              "--batch-size", "4"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    for text in ("decode sequential_ms_per_frame", "workers=2 random", "samples/s"):
        assert text in out.output


def test_record_names_unknown_env_and_engine(tmp_path):
    out = runner.invoke(app, ["record", "--env", "embodied_mm/Nope-v0", "--episodes", "1",
                              "--out", str(tmp_path / "a")])  # fmt: skip
    assert out.exit_code != 0 and "embodied_mm/PickLift-v0" in out.output
    out = runner.invoke(app, ["record", "--env", "embodied_mm/PickLift-v0", "--engine", "foo",
                              "--episodes", "1", "--out", str(tmp_path / "b")])  # fmt: skip
    assert out.exit_code != 0 and "unknown engine 'foo'" in out.output
    assert not (tmp_path / "b/meta/info.json").exists()
