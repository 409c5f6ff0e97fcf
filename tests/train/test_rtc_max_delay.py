"""``train --rtc-max-delay D``: the chunk head is built for prefix conditioning."""

import pytest

from embodied_mm.model.config_io import ConfigError
from embodied_mm.train.config import load_train_config


def test_the_flag_sets_the_heads_prefix_conditioning():
    cfg, _ = load_train_config(None, ["--rtc-max-delay", "3"])
    assert cfg.policy.head.kind == "chunk"
    assert cfg.policy.head.rtc_max_delay == 3
    plain, _ = load_train_config(None, [])
    assert plain.policy.head.rtc_max_delay == 0


def test_a_flow_head_or_a_delay_past_the_chunk_is_a_one_line_error():
    with pytest.raises(ConfigError, match="prefix conditioning is for the chunk head"):
        load_train_config(None, ["--recipe", "vla-flow", "--rtc-max-delay", "2"])
    with pytest.raises(ConfigError, match="fewer than the chunk's"):
        load_train_config(None, ["--rtc-max-delay", "8", "--policy.chunk_size", "8"])
