"""Every command meets bad input the same way: one line on stderr (``error: ...``) naming what
was wrong and what is accepted, a usage exit code (2; 1 only where the command's verdict is
"no": a dataset that fails ``dataset check``), and never a traceback.

One table of bad inputs covers every registered command (a test fails when a command has no
row). Rows run through Typer's runner in this process (the same command group, so the same
rendering), except where the process boundary matters (serve and deploy, which bind ports,
connect and install signal handlers): those run as ``python -m embodied_mm.cli.main``.
Broken inputs are real files: copies of the shipped checkpoint with one thing corrupted, a
dataset written by the real writer with a truncated parquet or mp4, malformed JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from embodied_mm.cli.demo import shipped_checkpoint
from embodied_mm.cli.main import app
from embodied_mm.data import synthetic
from embodied_mm.data.lerobot_format import build_features
from embodied_mm.data.writer import DatasetWriter

CLI = [sys.executable, "-m", "embodied_mm.cli.main"]
ENV = "embodied_mm/ReachObject-v0"
PARQUET = "data/chunk-000/file-000.parquet"
MP4 = "videos/observation.images.front/chunk-000/file-000.mp4"


@dataclass(frozen=True)
class Bad:
    """One bad invocation: ``args`` ({name} = a path of :func:`inputs`), a text its output
    must hold (the stderr line, or for ``dataset check`` its report), the exit code, and
    whether it runs as a separate process."""

    args: tuple[str, ...]
    says: str
    code: int = 2
    process: bool = False

    @property
    def command(self) -> str:
        """The command path it exercises, e.g. ``dataset show``."""
        return " ".join(self.args[:2] if self.args[0] in ("bench", "dataset") else self.args[:1])


def bad(*args: str, says: str, **kw) -> Bad:
    return Bad(tuple(args), says, **kw)


EVAL = ("eval", "--env", ENV, "--episodes", "1", "--checkpoint")
TRAIN = ("train", "--steps", "1", "--batch-size", "2", "--out", "{tmp}/run", "--dataset")

TABLE: dict[str, Bad] = {
    # eval: options, envs, checkpoints
    "eval-unknown-env": bad("eval", "--checkpoint", "{ck}", "--env", "nope",
                            says="unknown env 'nope'; known: embodied_mm/PickLift-v0"),
    "eval-missing-checkpoint": bad(*EVAL, "{tmp}/missing",
                                   says="policy directory {tmp}/missing does not exist"),
    "eval-episodes-0": bad(*EVAL, "{ck}", "--episodes", "0", says="--episodes must be >= 1, got 0"),
    "eval-episodes-neg": bad(*EVAL, "{ck}", "--episodes", "-1",
                             says="--episodes must be >= 1, got -1"),
    "eval-num-envs-0": bad(*EVAL, "{ck}", "--num-envs", "0", says="--num-envs must be >= 1, got 0"),
    "eval-hz-0": bad(*EVAL, "{ck}", "--hz", "0", says="hz must be a finite number > 0, got 0.0"),
    "eval-split": bad(*EVAL, "{ck}", "--split", "nope",
                      says="unknown --split 'nope'; known: train, heldout"),
    "checkpoint-chunk-eight": bad(*EVAL, "{chunk_eight}",
                                  says="{chunk_eight}/config.json: config.chunk_size: expected "
                                  "int ≥ 1, got 'eight'"),
    "checkpoint-chunk-negative": bad(*EVAL, "{chunk_negative}",
                                     says="config.chunk_size: expected int ≥ 1, got -4"),
    "checkpoint-action-dim-vs-stats": bad(*EVAL, "{action_dim}",
                                          says="{action_dim}/stats.json: action.min has 7 values, "
                                          "but {action_dim}/config.json has config.action_dim 6"),
    "checkpoint-state-dim-vs-stats": bad(*EVAL, "{state_dim}",
                                         says="observation.state.min has 15 values, but "
                                         "{state_dim}/config.json has config.state_dim 14"),
    "checkpoint-no-tokenizer": bad(*EVAL, "{no_tokenizer}",
                                   says="tokenizer directory {no_tokenizer}/tokenizer is missing"),
    "checkpoint-broken-tokenizer": bad(*EVAL, "{broken_tokenizer}",
                                       says="cannot load tokenizer directory "
                                       "{broken_tokenizer}/tokenizer"),
    "eval-compare-empty": bad("eval-compare", "{empty_json}", "{ck}/config.json",
                              says="{empty_json}: empty; expected an eval_info.json"),
    "eval-compare-malformed": bad("eval-compare", "{ck}/config.json", "{malformed_json}",
                                  says="{ck}/config.json: no 'tasks' list"),
    "eval-compare-max-drop": bad("eval-compare", "{ck}/config.json", "{ck}/config.json",
                                 "--max-drop", "nan", says="--max-drop must be a success-rate "
                                 "drop in [0, 1], got nan"),
    "eval-compare-missing": bad("eval-compare", "{tmp}/none.json", "{malformed_json}",
                                says="cannot read {tmp}/none.json"),
    "report-missing": bad("report", "{tmp}/no-run", says="{tmp}/no-run: no such run directory"),
    "eval-instruction-blank": bad(*EVAL, "{ck}", "--instruction", "  ",
                                  says="--instruction must be a non-empty text"),
    "eval-env-all-and-more": bad("eval", "--checkpoint", "{ck}", "--env", f"all,{ENV}",
                                 says="--env all means every task; give it alone"),
    "eval-plans-missing-dataset": bad("eval-plans", "--checkpoint", "{ck}", "--dataset",
                                      "{tmp}/none", says="{tmp}/none/meta/info.json: missing"),
    "eval-plans-every-0": bad("eval-plans", "--checkpoint", "{ck}", "--dataset", "{ds}",
                              "--every", "0", says="--every must be >= 1, got 0"),
    "eval-goals-missing-dataset": bad("eval-goals", "--checkpoint", "{ck}", "--dataset",
                                      "{tmp}/none", says="{tmp}/none/meta/info.json: missing"),
    "eval-goals-episodes-0": bad("eval-goals", "--checkpoint", "{ck}", "--dataset", "{ds}",
                                 "--episodes", "0",
                                 says="--episodes and --batch-size must be >= 1, got 0, 64"),
    "eval-actions-missing-dataset": bad("eval-actions", "--checkpoint", "{ck}", "--dataset",
                                        "{tmp}/none", says="{tmp}/none/meta/info.json: missing"),
    "eval-actions-batch-0": bad("eval-actions", "--checkpoint", "{ck}", "--dataset", "{ds}",
                                "--batch-size", "0",
                                says="--episodes and --batch-size must be >= 1, got 20, 0"),
    # simulation commands
    "demo-env": bad("demo", "--env", "pick_lift", says="unknown env 'pick_lift'; known:"),
    "demo-episodes-0": bad("demo", "--episodes", "0", says="--episodes must be >= 1, got 0"),
    "demo-instruction-blank": bad("demo", "--instruction", "", says="--instruction must be a "
                                  "non-empty text, e.g. 'pick up the red cube'; got ''"),
    "rollout-env": bad("rollout", "--env", "nope", says="unknown env 'nope'"),
    "rollout-instruction-scripted": bad("rollout", "--env", ENV, "--instruction", "reach",
                                        says="--instruction is for a checkpoint policy"),
    "rollout-episodes-0": bad("rollout", "--env", ENV, "--episodes", "0",
                              says="Invalid value for '--episodes'"),
    "rollout-hz-nan": bad("rollout", "--env", ENV, "--hz", "nan",
                          says="hz must be a finite number > 0, got nan"),
    "record-env": bad("record", "--episodes", "1", "--out", "{tmp}/rec", "--env", "nope",
                      says="unknown env 'nope'"),
    "record-codec": bad("record", "--episodes", "1", "--out", "{tmp}/rec", "--env", ENV,
                        "--codec", "nope", says="unknown video codec 'nope'"),
    "envs-extra-argument": bad("envs", "extra", says="unexpected extra argument"),
    "policies-unknown-option": bad("policies", "--bogus", says="No such option: --bogus"),
    # train
    "train-recipe": bad("train", "--recipe", "vla-nope",
                        says="--recipe: expected one of vla-chunk, vla-discrete, vla-flow"),
    "train-policy-name": bad("train", "--policy", "vla-nope", says="choose the recipe with"),
    "train-init-from-missing": bad(*TRAIN, "{ds}", "--init-from", "{tmp}/missing",
                                   says="--init_from: expected a policy directory"),
    "train-steps-0": bad("train", "--steps", "0", says="--steps: expected int ≥ 1, got 0"),
    "train-steps-neg": bad("train", "--steps", "-3", says="--steps: expected int ≥ 1, got -3"),
    "train-batch-size-0": bad("train", "--batch-size", "0",
                              says="--batch_size: expected int ≥ 1, got 0"),
    "train-obs-history": bad("train", "--n-obs-steps", "2",
                             says="observation history is not supported"),
    "train-goal-input-without-goal-loss": bad(*TRAIN, "{ds}", "--policy.goal_input", "true",
                                              says="goal_input feeds the goal head's waypoints"),
    "train-truncated-parquet": bad(*TRAIN, "{ds_parquet}", says="{ds_parquet}/" + PARQUET),
    "train-truncated-mp4": bad(*TRAIN, "{ds_mp4}", says="{ds_mp4}/" + MP4),
    # datasets
    "dataset-info-not-a-dataset": bad("dataset", "info", "{tmp}",
                                      says="{tmp}/meta/info.json: missing"),
    "dataset-check-truncated-parquet": bad("dataset", "check", "{ds_parquet}", code=1,
                                           says="{ds_parquet}/" + PARQUET + ": unreadable parquet"),
    "dataset-check-truncated-mp4": bad("dataset", "check", "{ds_mp4}", code=1,
                                       says="{ds_mp4}/" + MP4 + ": corrupt or unreadable video"),
    "dataset-show-truncated-parquet": bad("dataset", "show", "{ds_parquet}", "--out",
                                          "{tmp}/a.mp4", says="{ds_parquet}/" + PARQUET),
    "dataset-show-truncated-mp4": bad("dataset", "show", "{ds_mp4}", "--out", "{tmp}/b.mp4",
                                      says="{ds_mp4}/" + MP4),
    "dataset-import-missing": bad("dataset", "import-robomimic", "{tmp}/none.hdf5", "--out",
                                  "{tmp}/imported", says="{tmp}/none.hdf5: not a readable HDF5"),
    # export
    "export-stats-mismatch": bad("export", "--checkpoint", "{action_dim}", "--out", "{tmp}/x",
                                 says="{action_dim}/stats.json: action.min has 7 values"),
    "export-format": bad("export", "--checkpoint", "{ck}", "--out", "{tmp}/y", "--format",
                         "tflite", says="unknown format 'tflite'; known: onnx"),
    # serving and the robot loop: separate processes
    "serve-port-range": bad("serve", "--checkpoint", "{ck}", "--port", "99999", process=True,
                            says="--port 99999 is outside 0..65535"),
    "serve-port-in-use": bad("serve", "--checkpoint", "{ck}", "--port", "{busy_port}",
                             process=True, says="port {busy_port} on 127.0.0.1 is already in use"),
    "serve-bad-checkpoint": bad("serve", "--checkpoint", "{no_tokenizer}", "--port", "0",
                                says="tokenizer directory {no_tokenizer}/tokenizer is missing"),
    "deploy-http-server": bad("deploy", "--robot", "sim:pick_lift", "--server",
                              "http://127.0.0.1:8000", process=True,
                              says="must start with ws:// or wss://"),
    "deploy-hz-nan": bad("deploy", "--robot", "sim:pick_lift", "--checkpoint", "{ck}", "--hz",
                         "nan", process=True, says="--hz must be a finite number > 0, got nan"),
    "deploy-episodes-0": bad("deploy", "--robot", "sim:pick_lift", "--checkpoint", "{ck}",
                             "--episodes", "0", says="--episodes must be >= 1, got 0"),
    "deploy-instruction-blank": bad("deploy", "--robot", "sim:pick_lift", "--checkpoint", "{ck}",
                                    "--instruction", " ",
                                    says="--instruction must be a non-empty text"),
    "deploy-plan-with-server": bad("deploy", "--robot", "sim:pick_lift", "--server",
                                   "ws://127.0.0.1:1", "--plan",
                                   says="--plan/--no-plan choose for --checkpoint"),
    "deploy-timeout-0": bad("deploy", "--robot", "sim:pick_lift", "--server",
                            "ws://127.0.0.1:1", "--timeout", "0",
                            says="--timeout must be a finite number > 0, got 0.0"),
    "deploy-connect-wait-nan": bad("deploy", "--robot", "sim:pick_lift", "--server",
                                   "ws://127.0.0.1:1", "--connect-wait", "nan",
                                   says="--connect-wait must be a finite number >= 0, got nan"),
    "calibrate-robot": bad("calibrate", "--port", "/dev/null", "--robot", "nope",
                           says="unknown --robot 'nope'; known: so100, so101"),
    # benchmarks: refused before they measure anything
    "bench-model": bad("bench", "model", "--recipe", "nope", says="unknown policy recipe 'nope'"),
    "bench-chunking": bad("bench", "chunking", "--checkpoint", "{tmp}/none", "--modes", "fast",
                          says="unknown mode(s) ['fast']; known: open_loop"),
    "bench-chunking-latency": bad("bench", "chunking", "--checkpoint", "{tmp}/none",
                                  "--latencies-ms", "0,soon",
                                  says="--latencies-ms takes numbers, comma-separated"),
    "bench-teleop": bad("bench", "teleop", "--fps", "0", says="Invalid value for '--fps'"),
    "bench-data": bad("bench", "data", "--dataset", "{tmp}/none",
                      says="{tmp}/none/meta/info.json: missing"),
    "bench-deploy": bad("bench", "deploy", "--hz", "0", says="--hz must be a finite number > 0"),
    "bench-envs": bad("bench", "envs", "--engines", "nope", says="engine 'nope' is not one of"),
    "bench-experts": bad("bench", "experts", "--tasks", "nope", says="unknown task 'nope'"),
    "bench-export": bad("bench", "export", "--recipe", "nope",
                        says="unknown policy recipe 'nope'"),
    "bench-int8": bad("bench", "int8", "--checkpoint", "{tmp}/none",
                      says="--checkpoint {tmp}/none: not a policy directory"),
    "bench-train": bad("bench", "train", "--policy", "nope",
                       says="recipe: expected one of vla-chunk"),
}  # fmt: skip


def registered_commands() -> set[str]:
    """Every command the CLI registers, as its path under ``embodied-mm``."""

    def walk(command, prefix: tuple[str, ...]):
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            yield " ".join(prefix)
            return
        for name, sub in subcommands.items():
            yield from walk(sub, (*prefix, name))

    return set(walk(typer.main.get_command(app), ()))


def test_every_command_has_a_bad_input_row():
    covered = {row.command for row in TABLE.values()}
    assert registered_commands() - covered == set(), "add a row to TABLE for these commands"
    assert covered - registered_commands() == set()  # rows naming commands that do not exist


def _checkpoint_copy(root: Path, name: str, ck: Path) -> Path:
    out = root / name
    shutil.copytree(ck, out)
    return out


def _edit_config(directory: Path, **fields) -> None:
    meta = json.loads((directory / "config.json").read_text())
    meta["config"].update(fields)
    (directory / "config.json").write_text(json.dumps(meta))


def _fitting_dataset(root: Path) -> None:
    """Two short episodes the default recipe trains on (state 15, action 7, two cameras)."""
    features = build_features(state_dim=15, action_dim=7, fps=10, codec="h264",
                              cameras={"front": (32, 32), "wrist": (32, 32)})  # fmt: skip
    with DatasetWriter.create(root, features, 10, robot_type="synthetic") as writer:
        for seed in range(2):
            writer.add_episode(synthetic.synthetic_episode(10, seed, hw=(32, 32)))


def _truncated_copy(ds: Path, out: Path, member: str, keep: float) -> Path:
    shutil.copytree(ds, out)
    raw = (out / member).read_bytes()
    (out / member).write_bytes(raw[: int(len(raw) * keep)])
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """The broken files the table names, built once: {name: path}."""
    tmp = tmp_path_factory.mktemp("bad")
    ck = shipped_checkpoint()
    assert ck is not None, "the shipped checkpoint sim_assets/checkpoints/default is missing"
    paths = {"tmp": tmp, "ck": ck}
    paths["chunk_eight"] = _checkpoint_copy(tmp, "chunk_eight", ck)
    _edit_config(paths["chunk_eight"], chunk_size="eight")
    paths["chunk_negative"] = _checkpoint_copy(tmp, "chunk_negative", ck)
    _edit_config(paths["chunk_negative"], chunk_size=-4)
    paths["action_dim"] = _checkpoint_copy(tmp, "action_dim", ck)
    _edit_config(paths["action_dim"], action_dim=6)
    paths["state_dim"] = _checkpoint_copy(tmp, "state_dim", ck)
    _edit_config(paths["state_dim"], state_dim=14)
    paths["no_tokenizer"] = _checkpoint_copy(tmp, "no_tokenizer", ck)
    shutil.rmtree(paths["no_tokenizer"] / "tokenizer")
    paths["broken_tokenizer"] = _checkpoint_copy(tmp, "broken_tokenizer", ck)
    (paths["broken_tokenizer"] / "tokenizer" / "tokenizer.json").write_text('{"model": ')
    paths["empty_json"] = tmp / "empty.json"
    paths["empty_json"].write_text("")
    paths["malformed_json"] = tmp / "malformed.json"
    paths["malformed_json"].write_text("{oops")
    paths["ds"] = tmp / "ds"
    _fitting_dataset(paths["ds"])
    paths["ds_parquet"] = _truncated_copy(paths["ds"], tmp / "ds_parquet", PARQUET, 0.9)
    paths["ds_mp4"] = _truncated_copy(paths["ds"], tmp / "ds_mp4", MP4, 0.5)
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(scope="module")
def busy_port():
    """A port another socket listens on for the whole module."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def _run(row: Bad, values: dict[str, str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of the row's invocation."""
    args = [a.format(**values) for a in row.args]
    if row.process:
        env = {**os.environ, "MUJOCO_GL": "egl"}
        done = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)
        return done.returncode, done.stdout, done.stderr
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: raised instead of a one-line error") from result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", list(TABLE))
def test_bad_input_is_one_line_and_a_usage_exit(name, inputs, busy_port):
    row = TABLE[name]
    values = {**inputs, "busy_port": str(busy_port)}
    code, out, err = _run(row, values)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"stderr should be one line, got:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    assert code == row.code, f"exit {code}, expected {row.code}: {lines[0]}"
    assert "Traceback" not in out + err
    assert row.says.format(**values) in (out + err), lines[0]
