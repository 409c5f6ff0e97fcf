"""``embodied-mm train`` as a user types it: nested flags reach the run, bad flags and files
get one line on stderr (exit 2, no traceback), --help lists every field."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from embodied_mm.model.modeling_vla import VLAPolicy
from tests.train.conftest import write_dataset


def _train(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "embodied_mm.cli.main", "train", *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--policy.chunk_size", "eight"], "--policy.chunk_size: expected int ≥ 1, got 'eight'"),
        (["--policy.vision.film", "maybe"], "--policy.vision.film: expected bool, got 'maybe'"),
        (["--steps", "0"], "--steps: expected int ≥ 1, got 0"),
        (["--recipe", "vla-nope"], "--recipe: expected one of vla-chunk, vla-discrete, vla-flow"),
        (["--policy", "vla-chunk"], "--policy: takes the policy's fields now; choose the recipe"),
        (
            ["--policy", "vla-nope"],
            "--policy: takes the policy's fields now; choose the recipe "
            "with --recipe NAME (one of vla-chunk, vla-discrete, vla-flow, vlm-",
        ),
        (["--policy-overrides", "{}"], "--policy-overrides is gone: set each policy field"),
        (
            ["--init-from", "runs/none/policy", "--out", "/nonexistent/run"],
            "--init_from: expected a policy directory holding model.safetensors",
        ),
        (
            ["--policy.chunk", "4"],
            "unknown option --policy.chunk; did you mean --policy.chunk_size?",
        ),
    ],
)
def test_a_bad_flag_is_one_line_on_stderr_and_exit_2(args, line, monkeypatch, capsys):
    """In process, through the CLI's entry point (the subprocess test below covers the rest)."""
    from embodied_mm.cli.main import main

    monkeypatch.setattr(sys, "argv", ["embodied-mm", "train", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {line}"), lines


def test_a_bad_yaml_file_is_named_in_one_line_without_a_traceback(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("policy:\n  vision:\n    image_size: -64\n")
    result = _train("--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {path}: policy.vision.image_size: expected int ≥ 1, got -64"
    )


def test_help_lists_nested_policy_flags():
    result = _train("--help")
    assert result.returncode == 0
    for flag in ("--recipe", "--steps int", "--policy.chunk_size int", "--policy.vision.film bool",
                 "--config FILE", "--resume"):  # fmt: skip
        assert flag in result.stdout
    assert "Config file for" not in result.stdout


@pytest.mark.slow
def test_yaml_and_nested_flags_reach_the_saved_run_and_checkpoint(tmp_path):
    """The Makefile's style of call: a YAML file of policy fields plus flags on top."""
    dataset = write_dataset(tmp_path / "ds", [12, 10])
    config = tmp_path / "policy.yaml"
    config.write_text(
        "recipe: vla-chunk\nbatch_size: 4\npolicy:\n  chunk_size: 6\n"
        "  vision: {family: resnet, image_size: 32, hidden_size: 16, film: true, keypoints: 4}\n"
        "  goal_loss_weight: 1.0\n  goal_dims: [8, 9]\n"
    )
    out = tmp_path / "run"
    result = _train("--config", str(config), "--dataset", str(dataset), "--out", str(out),
                    "--steps", "2", "--save-every", "2", "--warmup-steps", "1",
                    "--policy.proprio.dropout", "0.5", "--policy.chunk_size", "4")  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["policy"]["chunk_size"] == 4  # the flag over the file
    assert (
        saved["policy"]["vision"]["film"] is True and saved["policy"]["proprio"]["dropout"] == 0.5
    )
    policy = VLAPolicy.from_pretrained(Path(out) / "checkpoints" / "step-0000002" / "policy",
                                       device="cpu")  # fmt: skip
    cfg = policy.config
    assert (cfg.chunk_size, cfg.vision.family, cfg.vision.keypoints, cfg.goal_dims) == (
        4, "resnet", 4, [8, 9],
    )  # fmt: skip
