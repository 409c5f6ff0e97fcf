"""``eval``'s progress report: episodes done, running success rate and ETA, on stderr."""

import io
import json
import re
from pathlib import Path

import pytest

from embodied_mm.eval.evaluate import run_eval
from embodied_mm.eval.progress import EvalProgress

DEFAULT = Path(__file__).parents[2] / "sim_assets" / "checkpoints" / "default"
LINE = re.compile(r"(\d+)/(\d+) \[[^]]*<[^]]*, success=(\d+)/(\d+) \((\d+)%\)\]")


def _counts(text: str) -> list[tuple[int, int, int]]:
    """(done, total, successes) of every progress line in ``text``."""
    out = []
    for m in LINE.finditer(text):
        done, total, succ, done_again, _ = map(int, m.groups())
        assert done == done_again
        out.append((done, total, succ))
    return out


def test_plain_lines_each_tenth_and_the_last():
    out = io.StringIO()  # not a terminal: plain lines, no carriage returns
    progress = EvalProgress(25, file=out)
    outcomes = [i % 3 != 0 for i in range(25)]
    for i, ok in enumerate(outcomes):
        progress.episode_done("embodied_mm/PickLift-v0", {"seed": i, "success": ok})
    progress.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10  # one per tenth; the last tenth is the 25th episode
    counts = _counts(text)
    assert [done for done, _, _ in counts] == [3, 5, 8, 10, 13, 15, 18, 20, 23, 25]
    for done, total, succ in counts:
        assert total == 25 and succ == sum(outcomes[:done])
    assert all(line.startswith("eval PickLift-v0:") for line in lines)
    assert "success=16/25 (64%)" in lines[-1]


def test_terminal_bar_redraws_in_place():
    out = io.StringIO()
    with EvalProgress(4, file=out, interactive=True) as progress:
        for ok in (True, False, True, True):
            progress.episode_done("embodied_mm/ReachObject-v0", {"success": ok})
    text = out.getvalue()
    assert "\r" in text and "\n" not in text.rstrip("\n")
    assert _counts(text)[-1] == (4, 4, 3)
    assert "eval ReachObject-v0" in text


@pytest.mark.slow
def test_eval_reports_the_episodes_it_runs(tmp_path, capfd):
    """The counts on stderr are the eval's own: every episode, as it ends, with its outcome."""
    info = run_eval(DEFAULT, ["embodied_mm/ReachObject-v0"], "mujoco", episodes=3,
                    out_dir=tmp_path, num_envs=2, progress_bar=False)  # fmt: skip
    err = capfd.readouterr().err
    counts = _counts(err)
    assert [done for done, _, _ in counts] == [1, 2, 3]
    (task,) = json.loads((tmp_path / "eval_info.json").read_text())["tasks"]
    assert counts[-1] == (3, 3, task["successes"]) and task["episodes"] == 3
    assert info["tasks"][0]["successes"] == task["successes"]
