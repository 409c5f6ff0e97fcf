"""The dataset CLI commands, run in-process through Typer's runner on real files."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.data.check import check_dataset
from tests.data.conftest import episodes_table, write_synthetic
from tests.data.test_robomimic import make_robomimic

runner = CliRunner()
CLI = [sys.executable, "-m", "embodied_mm.cli.main"]


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


@pytest.mark.parametrize(
    ("damaged", "keep"),
    [("videos/observation.images.front/chunk-000/file-000.mp4", 0.5),
     ("data/chunk-000/file-000.parquet", -40)],
)  # fmt: skip
def test_show_names_a_truncated_file_in_one_line(small_dataset, tmp_path, damaged, keep):
    root, _ = small_dataset
    path = root / damaged
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)] if isinstance(keep, float) else raw[:keep])
    r = subprocess.run(
        [*CLI, "dataset", "show", str(root), "--out", str(tmp_path / "ep.mp4")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: ")


def test_info_on_a_non_dataset_is_a_clear_error(tmp_path):
    out = runner.invoke(app, ["dataset", "info", str(tmp_path)])
    assert out.exit_code == 2 and "meta/info.json: missing" in out.output


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


# A recorder that stops after its first commit, holding the dataset, until told to go on.
RECORD_AND_WAIT = """
import sys, time
from pathlib import Path
from embodied_mm.data.recorder import record
from tests.data.synthetic_source import synthetic_factory
root, go = Path(sys.argv[1]), Path(sys.argv[2])
def wait_for_go(index):
    while not go.exists():
        time.sleep(0.05)
record(synthetic_factory(), root, 3, progress=False, on_commit=wait_for_go)
"""


def _committed(root) -> int:
    try:
        return json.loads((root / "meta/info.json").read_text())["total_episodes"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def _files(root) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.slow
def test_a_second_record_on_the_same_out_fails_at_once_and_the_first_finishes_intact(tmp_path):
    root, go = tmp_path / "ds", tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, "-c", RECORD_AND_WAIT, str(root), str(go)], stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while _committed(root) < 1:  # it holds the lock and waits in on_commit
            assert first.poll() is None, first.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the first recorder made no progress"
            time.sleep(0.05)
        before = _files(root)
        second = subprocess.run(
            [*CLI, "record", "--env", "embodied_mm/PickLift-v0", "--episodes", "5",
             "--out", str(root), "--resume"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert second.returncode == 1, second.stderr[-2000:]
        (line,) = second.stderr.strip().splitlines()  # one line, naming the holder
        assert line.startswith(f"error: dataset {root} is in use by pid {first.pid} on host")
        assert _files(root) == before  # nothing of the first's touched
        go.touch()
        assert first.wait(timeout=120) == 0, first.stderr.read().decode()[-2000:]
    finally:
        first.kill()
        first.wait()
        first.stderr.close()
    report = check_dataset(root)
    assert report.ok and report.episodes == 3, report.errors
    assert episodes_table(root)["seed"].tolist() == [0, 1, 2]


def test_record_resume_on_files_without_metadata_names_the_directory(tmp_path):
    root = tmp_path / "ds"
    write_synthetic(root, [5, 6])
    (root / "meta/info.json").unlink()
    before = _files(root)
    out = runner.invoke(app, ["record", "--env", "embodied_mm/PickLift-v0", "--episodes", "3",
                              "--out", str(root), "--resume"])  # fmt: skip
    assert out.exit_code != 0
    assert "meta/info.json" in out.output and "holds files" in out.output
    assert _files(root) == before
