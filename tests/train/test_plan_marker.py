"""A run trained on demos with sub-task labels saves policies marked ``trained_with_plans``
(what makes demo/rollout/eval/deploy ask them for plans by default)."""

from __future__ import annotations

import json

from embodied_mm.train.config import TrainConfig
from embodied_mm.train.run import run_training


def test_training_on_labelled_demos_marks_the_saved_policy(tiny_dataset, tmp_path):
    cfg = TrainConfig(recipe="vla-chunk", dataset=[str(tiny_dataset)], out=str(tmp_path / "run"),
                      steps=2, batch_size=4, save_every=2, log_every=1, warmup_steps=1)  # fmt: skip
    run_training(cfg)
    meta = json.loads((tmp_path / "run/checkpoints/last/policy/config.json").read_text())
    assert meta["trained_with_plans"] is True  # the synthetic demos label every frame
