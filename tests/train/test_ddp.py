"""``accelerate launch --multi_gpu --num_processes 2`` trains and checkpoints on the CPU.

Without CUDA, torchrun's ranks reach ``Accelerator(cpu=True)``, which selects DDP over gloo.
(``accelerate launch --cpu`` would start a single process.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from embodied_mm.model.pretrained import WEIGHTS_FILE
from embodied_mm.train.checkpoint import load_training_state

HERE = Path(__file__).parent
LAUNCH = [
    str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu",
    "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
    "--dynamo_backend", "no",
]  # fmt: skip


def _launch(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``accelerate launch`` with 2 CPU processes; on a hang, kill every rank and fail."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*LAUNCH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"2-process run hung for {timeout} s:\n{out[-2000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _train_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        "-m", "embodied_mm.cli.main", "train", "--dataset", str(dataset), "--out", str(out),
        "--batch-size", "4", "--log-every", "1", "--warmup-steps", "1", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    proc = _launch(_train_args(tiny_dataset, out, "--recipe", "vla-chunk", "--steps", "3",
                               "--save-every", "3"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("on 2 process(es)") == 2  # both ranks finished the same run
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # only the main process logs
    assert (out / "checkpoints" / "step-0000003" / "policy" / "model.safetensors").is_file()


@pytest.mark.slow
def test_nan_loss_on_one_rank_stops_every_rank_with_a_checkpoint(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    proc = _launch([str(HERE / "nan_on_one_rank.py"), str(tiny_dataset), str(out)])
    assert proc.returncode != 0
    saved = out / "checkpoints" / "step-0000001"
    for rank in (0, 1):
        assert (
            f"rank {rank}: loss is nan on rank 1 at step 2; all ranks stopped; "
            f"last good state saved in {saved}"
        ) in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (saved / "policy" / WEIGHTS_FILE).is_file()
    assert load_training_state(saved)["step"] == 1


@pytest.mark.slow
def test_ranks_draw_their_own_streams_and_resume_restores_each(tiny_dataset, tmp_path):
    """vla-flow samples flow noise and times from the global RNG on every rank. The ranks'
    streams differ; a run resumed from step 2 gives each rank back its own stream and matches
    the uninterrupted run bitwise (weights and both ranks' RNG states)."""
    straight = tmp_path / "straight"
    args = ("--recipe", "vla-flow", "--steps", "4", "--save-every", "2", "--keep-last", "5")
    proc = _launch(_train_args(tiny_dataset, straight, *args))
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = load_training_state(straight / "checkpoints" / "step-0000004")
    rank0, rank1 = final["rng"]
    assert not torch.equal(rank0["torch"], rank1["torch"])
    assert rank0["numpy"][1].tolist() != rank1["numpy"][1].tolist()

    # the same run, stopped after its step-2 checkpoint, then resumed
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-0000004")
    proc = _launch(_train_args(tiny_dataset, resumed, *args, "--resume"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stdout and "step 2" in proc.stdout

    again = load_training_state(resumed / "checkpoints" / "step-0000004")
    for rank in (0, 1):
        assert torch.equal(again["rng"][rank]["torch"], final["rng"][rank]["torch"]), rank
    a = load_file(str(straight / "checkpoints" / "step-0000004" / "policy" / WEIGHTS_FILE))
    b = load_file(str(resumed / "checkpoints" / "step-0000004" / "policy" / WEIGHTS_FILE))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    rows = [json.loads(x) for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # steps 3, 4 once, not twice
