"""``accelerate launch --multi_gpu --num_processes 2`` trains and checkpoints on the CPU.

Without CUDA, torchrun's ranks reach ``Accelerator(cpu=True)``, which selects DDP over gloo.
(``accelerate launch --cpu`` would start a single process.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "embodied_mm.cli.main", "train", "--policy", "vla-chunk",
        "--dataset", str(tiny_dataset), "--out", str(out), "--steps", "3", "--batch-size", "4",
        "--save-every", "3", "--log-every", "1",
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("on 2 process(es)") == 2  # both ranks finished the same run
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # only the main process logs
    assert (out / "checkpoints" / "step-0000003" / "policy" / "model.safetensors").is_file()
