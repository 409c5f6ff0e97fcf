import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embodied_mm.eval.evaluate import compare_evals, run_eval, summarize_task
from embodied_mm.policies.recipes import make_policy

ENV = "embodied_mm/ReachObject-v0"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "policy"
    make_policy("vla-chunk").save_pretrained(path)
    return path


@pytest.mark.slow
def test_eval_writes_info_and_video(checkpoint, tmp_path):
    info = run_eval(checkpoint, [ENV], "mujoco", episodes=2, out_dir=tmp_path, split="heldout")
    on_disk = json.loads((tmp_path / "eval_info.json").read_text())
    assert on_disk == json.loads(json.dumps(info))
    (task,) = on_disk["tasks"]
    assert task["episodes"] == 2 and task["split"] == "heldout"
    assert [r["seed"] for r in task["per_episode"]] == [100_000, 100_001]
    assert 0.0 <= task["ci95"][0] <= task["success_rate"] <= task["ci95"][1] <= 1.0
    assert task["mean_length"] > 0
    assert Path(task["video"]).stat().st_size > 0


@pytest.mark.slow
def test_accelerate_launch_shards_episodes(checkpoint, tmp_path):
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "embodied_mm.cli.main",
        "eval", "--checkpoint", str(checkpoint), "--env", ENV, "--episodes", "3",
        "--num-envs", "1", "--out", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "eval_info.json").read_text())
    assert info["num_processes"] == 2
    seeds = [r["seed"] for r in info["tasks"][0]["per_episode"]]
    assert seeds == [100_000, 100_001, 100_002]  # merged from both ranks, none twice


def _info(rate_and_n: dict[str, tuple[int, int]]) -> dict:
    tasks = []
    for env_id, (s, n) in rate_and_n.items():
        records = [{"seed": i, "success": i < s, "steps": 10} for i in range(n)]
        from dataclasses import asdict

        tasks.append(asdict(summarize_task(env_id, "mujoco", "train", records, None)))
    return {"tasks": json.loads(json.dumps(tasks))}


def test_compare_flags_only_real_regressions():
    base = _info({"a": (18, 20), "b": (10, 20), "c": (5, 20)})
    cand = _info({"a": (8, 20), "b": (9, 20), "c": (15, 20)})
    flags = {r["task"][0]: r["regression"] for r in compare_evals(base, cand)}
    assert flags == {"a": True, "b": False, "c": False}


@pytest.mark.slow
def test_eval_runs_an_onnx_export_too(checkpoint, tmp_path):
    from embodied_mm.export.onnx_export import export_checkpoint

    export_checkpoint(checkpoint, tmp_path / "onnx")
    info = run_eval(tmp_path / "onnx", [ENV], "mujoco", episodes=1, out_dir=tmp_path / "eval",
                    num_envs=1)  # fmt: skip
    assert info["tasks"][0]["episodes"] == 1 and info["tasks"][0]["mean_length"] > 0
