"""SIGKILL at random moments, most of them inside commits (synthetic episodes are instant,
so a recorder spends its time renaming, remuxing and rewriting metadata)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embodied_mm.data.check import check_dataset
from embodied_mm.data.reader import DatasetMeta, load_frames
from embodied_mm.features import ACTION, OBS_STATE
from tests.data.synthetic_source import SyntheticSource

RECORD = """
import sys
from pathlib import Path
from embodied_mm.data.recorder import record
from tests.data.synthetic_source import synthetic_factory
root = Path(sys.argv[1])
record(synthetic_factory(), root, 10_000, resume=(root / "meta/info.json").exists(),
       progress=False)
"""


def _committed(root: Path) -> int:
    try:
        return json.loads((root / "meta/info.json").read_text())["total_episodes"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.mark.slow
def test_repeated_kill_9_during_commits_never_corrupts(tmp_path: Path):
    root = tmp_path / "ds"
    rng = random.Random(0)
    seen = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", RECORD, str(root)],
                                stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while _committed(root) <= seen:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        report = check_dataset(root)
        assert report.ok, report.errors
        assert report.episodes >= seen + 1
        seen = report.episodes

    # every committed episode is exactly the one its seed produces (nothing torn or mixed)
    meta = DatasetMeta(root)
    cols = load_frames(meta).columns
    eps = pd.read_parquet(root / "meta/episodes/chunk-000/file-000.parquet")
    source = SyntheticSource()
    for ep, seed in zip(meta.episodes, eps["seed"], strict=True):
        want = source.episode(int(seed))
        rows = slice(ep.from_index, ep.to_index)
        assert want.success and ep.length == len(want)
        np.testing.assert_array_equal(cols[OBS_STATE][rows], want.state)
        np.testing.assert_array_equal(cols[ACTION][rows], want.action)
    assert eps["seed"].tolist() == [s for s in range(eps["seed"].max() + 1) if s % 4 != 3]
