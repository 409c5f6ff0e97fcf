import json
import subprocess
import sys

import av


def test_demo_runs_the_default_policy_and_writes_a_video(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "embodied_mm.cli.main", "demo", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "success" in proc.stdout
    assert "the shipped default checkpoint" in proc.stdout  # not the scripted fallback
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["episodes"] == 1
    (video,) = tmp_path.glob("*.mp4")
    with av.open(str(video)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == summary["per_episode"][0]["steps"] + 1  # reset frame + one per step
