"""train --dataset-mix: with ``equal`` each --dataset is drawn equally often, however long its
episodes; ``frames`` keeps the plain shuffle (every frame alike)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embodied_mm.errors import UsageError
from embodied_mm.model.config_io import ConfigError
from embodied_mm.policies.recipes import recipe_config
from embodied_mm.train import run as run_module
from embodied_mm.train.config import TrainConfig, load_train_config
from embodied_mm.train.mixture import combined_weights, dataset_mix_weights
from embodied_mm.train.run import run_training
from embodied_mm.train.sampler import ResumableShardSampler
from tests.train.conftest import write_dataset


def test_equal_mix_draws_each_dataset_equally_often():
    lengths = [12, 60]
    weights = dataset_mix_weights(lengths, "equal")
    assert weights.shape == (72,)
    sampler = ResumableShardSampler(72, 8, seed=0, weights=weights)
    draws = []
    for epoch in range(200):  # 200 x 72 draws
        sampler.set_position(epoch)
        draws += [i for batch in sampler for i in batch]
    share_short = np.mean(np.array(draws) < lengths[0])
    assert share_short == pytest.approx(0.5, abs=0.02)  # 1/6 with every frame alike
    assert dataset_mix_weights(lengths, "frames") is None
    assert dataset_mix_weights([12], "equal") is None  # one dataset: nothing to balance


def test_mix_and_intervention_weights_multiply():
    mix = dataset_mix_weights([2, 3], "equal")
    person = torch.tensor([1.0, 3.0, 1.0, 1.0, 3.0], dtype=torch.float64)
    np.testing.assert_allclose(combined_weights(person, mix).numpy(), [0.5, 1.5, 1 / 3, 1 / 3, 1.0])
    assert combined_weights(None, None) is None
    assert combined_weights(None, mix) is mix


@pytest.mark.parametrize(("stage", "per_dataset"), [("instruct", [40, 8]), ("ground", [2, 2])])
def test_the_run_draws_with_the_mix_weights(stage, per_dataset, tmp_path, monkeypatch):
    # a dataset of long episodes beside one of short ones: 40 frames against 8, 2 episodes each
    long = write_dataset(tmp_path / "long", [20, 20])
    short = write_dataset(tmp_path / "short", [4, 4])
    seen: dict[str, torch.Tensor | None] = {}
    real_train = run_module.train

    def spy(*args, **kwargs):  # the real training step; only the weights it gets are noted
        seen["weights"] = kwargs["sample_weights"]
        return real_train(*args, **kwargs)

    monkeypatch.setattr(run_module, "train", spy)
    policy = recipe_config("vla-chunk", goal_loss_weight=1.0, goal_dims=[0, 1])
    run_training(TrainConfig(recipe="vla-chunk", policy=policy, dataset=[str(long), str(short)],
                             out=str(tmp_path / "run"), steps=1, batch_size=4, warmup_steps=1,
                             stage=stage, dataset_mix="equal"))  # fmt: skip
    weights = seen["weights"].numpy()
    assert len(weights) == sum(per_dataset)
    first = weights[: per_dataset[0]].sum()
    assert first == pytest.approx(weights[per_dataset[0] :].sum())


def test_bad_mix_and_align_stage_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="dataset_mix") as e:
        load_train_config(None, ["--dataset-mix", "tasks"])
    assert "frames" in str(e.value) and "equal" in str(e.value)
    cfg = TrainConfig(stage="align", dataset_mix="equal", out=str(tmp_path / "run"), steps=1)
    with pytest.raises(UsageError, match="--dataset-mix applies to --stage ground and instruct"):
        run_training(cfg)
