"""The run dir: one ``train`` at a time, no silent restart over an old run, and ``--resume``
says what it did."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.train.config import TrainConfig
from embodied_mm.train.run import run_training
from embodied_mm.train.rundir import RunDirError


def _args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--recipe", "vla-chunk", "--dataset", str(dataset), "--out", str(out),
        "--batch-size", "4", "--log-every", "1", "--warmup-steps", "1", *extra,
    ]  # fmt: skip


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _steps(run: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_run(tiny_dataset, tmp_path_factory) -> Path:
    """A 2-step run, saved at step 2 (not to be written by the tests that use it)."""
    run = tmp_path_factory.mktemp("rundir") / "run"
    result = CliRunner().invoke(app, _args(tiny_dataset, run, "--steps", "2", "--save-every", "2"))
    assert result.exit_code == 0, result.output
    return run


def test_train_into_an_existing_run_without_resume_is_refused_untouched(tiny_dataset, finished_run):
    before = _snapshot(finished_run)
    result = CliRunner().invoke(app, _args(tiny_dataset, finished_run, "--steps", "4"))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: run directory {finished_run} already holds a run")
    assert "--resume" in line and "--overwrite" in line
    assert _snapshot(finished_run) == before


def test_resume_of_a_finished_run_says_it_is_complete(tiny_dataset, finished_run):
    loss = [json.loads(x) for x in (finished_run / "metrics.jsonl").read_text().splitlines()][-1]
    before = _snapshot(finished_run)
    # no --steps: the run's own step budget, not the TrainConfig default
    result = CliRunner().invoke(app, _args(tiny_dataset, finished_run, "--resume"))
    assert result.exit_code == 0, result.output
    checkpoint = finished_run / "checkpoints" / "step-0000002"
    assert (
        f"run {finished_run} is already complete at step 2: final checkpoint {checkpoint}; "
        f"last logged loss {loss['loss']:.4f}"
    ) in result.stdout
    assert "nan" not in result.stdout
    assert _snapshot(finished_run) == before


def test_resume_says_which_options_it_kept_and_which_it_applied(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    first = CliRunner().invoke(app, _args(tiny_dataset, run, "--steps", "2", "--save-every", "2"))
    assert first.exit_code == 0, first.output
    result = CliRunner().invoke(
        app,
        _args(tiny_dataset, run, "--resume", "--steps", "3", "--lr", "1e-3", "--keep-last", "5"),
    )
    assert result.exit_code == 0, result.output
    assert "resume: applied keep_last 2 -> 5, steps 2 -> 3" in result.stdout
    assert "resume: kept the run's saved lr 0.0003 (asked 0.001)" in result.stdout
    assert "continues its saved optimiser, schedule and data order exactly" in result.stdout
    saved = TrainConfig.from_yaml(run / "config.yaml")
    assert (saved.lr, saved.steps, saved.keep_last) == (3e-4, 3, 5)
    assert _steps(run) == [1, 2, 3]
    assert (run / "checkpoints" / "step-0000003").is_dir()


def test_overwrite_moves_the_old_run_aside_and_starts_afresh(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(recipe="vla-chunk", dataset=[str(tiny_dataset)], out=str(run), steps=2,
                      batch_size=4, save_every=2, log_every=1, warmup_steps=1)  # fmt: skip
    run_training(cfg)
    old = _snapshot(run)
    with pytest.raises(RunDirError, match="give one of them"):
        run_training(cfg, resume=True, overwrite=True)
    result = run_training(cfg, overwrite=True)
    assert result.step == 2
    (aside,) = tmp_path.glob("run.replaced-*")
    # every old file, unchanged (the lock file stays: it is the run dir's, not the run's)
    assert _snapshot(aside) == {k: v for k, v in old.items() if k != ".lock"}
    assert _steps(run) == [1, 2]  # a fresh log, not appended to the old one


def test_resume_into_a_dir_that_holds_no_run_is_refused(tiny_dataset, tmp_path):
    run = tmp_path / "notes"
    run.mkdir()
    (run / "todo.txt").write_text("keep me")
    cfg = TrainConfig(recipe="vla-chunk", dataset=[str(tiny_dataset)], out=str(run), steps=1)
    with pytest.raises(RunDirError, match=r"--resume: .* holds no run \(no config.yaml"):
        run_training(cfg, resume=True)
    assert sorted(p.name for p in run.iterdir()) == [".lock", "todo.txt"]


def _train_cmd(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "embodied_mm.cli.main", *_args(dataset, out, *extra)]


@pytest.mark.slow
def test_second_train_on_a_run_dir_fails_at_once_naming_the_holder(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(_train_cmd(tiny_dataset, run, "--steps", "100000", "--save-every",
                                        "100000"), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.time() + 180
        lock, metrics = run / ".lock", run / "metrics.jsonl"
        # wait until it trains: it holds the lock and has logged a step
        while not (metrics.is_file() and metrics.stat().st_size > 0):
            assert first.poll() is None, "the first run ended before it trained"
            assert time.time() < deadline, "the first run never trained"
            time.sleep(0.1)
        assert str(first.pid) in lock.read_text()
        second = subprocess.run(_train_cmd(tiny_dataset, run, "--resume"), env=env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"run directory {run} is in use by pid {first.pid}" in second.stderr
        assert first.poll() is None  # the second did not wait for the first to finish
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The killed run's lock file still names it: the next run reports the stale lock, then
    # takes it over and trains.
    third = subprocess.run(_train_cmd(tiny_dataset, run, "--resume", "--steps", "1"), env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"stale lock from pid {first.pid}" in third.stderr
    assert "resume: applied steps 100000 -> 1" in third.stdout
