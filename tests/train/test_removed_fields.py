"""n_obs_steps is gone (the policy reads the latest frame only): runs saved with its one
meaningful value, 1, still load and resume; any other value is a one-line ConfigError."""

from __future__ import annotations

import json

import pytest

from embodied_mm.model.config_io import ConfigError
from embodied_mm.train.config import (
    TrainConfig,
    config_digest,
    digest_differences,
    load_train_config,
    train_flags_help,
)

HISTORY = "observation history is not supported"


def test_the_option_is_gone_from_the_config_and_its_flags():
    assert not hasattr(TrainConfig(), "n_obs_steps")
    assert "n_obs_steps" not in train_flags_help()


@pytest.mark.parametrize("args", [["--n-obs-steps", "2"], ["--n_obs_steps=4"]])
def test_history_as_a_flag_is_one_line(args):
    with pytest.raises(ConfigError, match=rf"^--n_obs_steps: {HISTORY} .*got \d$"):
        load_train_config(None, args)


def test_history_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("n_obs_steps: 2\nsteps: 5\n")
    with pytest.raises(ConfigError, match=rf"^{path}: n_obs_steps: {HISTORY}"):
        load_train_config(path)


def test_one_frame_still_loads_from_flags_files_and_saved_runs(tmp_path):
    cfg, _ = load_train_config(None, ["--n-obs-steps", "1", "--steps", "7"])
    assert cfg.steps == 7
    saved = tmp_path / "config.yaml"
    TrainConfig(steps=9).save(saved)
    saved.write_text(saved.read_text() + "n_obs_steps: 1\n")  # as earlier releases saved it
    assert TrainConfig.from_yaml(saved) == TrainConfig(steps=9)


def test_an_earlier_digest_with_one_frame_resumes_and_one_with_history_does_not():
    cfg = TrainConfig(steps=8)
    earlier = json.loads(config_digest(cfg))
    assert "n_obs_steps" not in earlier
    one = json.dumps({**earlier, "n_obs_steps": 1}, sort_keys=True)
    assert digest_differences(one, cfg) == []
    history = json.dumps({**earlier, "n_obs_steps": 2}, sort_keys=True)
    assert digest_differences(history, cfg) == ["n_obs_steps"]
