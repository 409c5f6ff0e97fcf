"""train --intervention-weight / --intervention-only on a dataset with known intervention
flags (written by our writer, as deploy --record writes them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embodied_mm.data import synthetic
from embodied_mm.data.lerobot_format import EXTRA_FEATURES, build_features
from embodied_mm.data.torch_dataset import build_window_dataset
from embodied_mm.data.writer import DatasetWriter
from embodied_mm.errors import UsageError
from embodied_mm.features import INTERVENTION, PLAN
from embodied_mm.model.config_io import ConfigError
from embodied_mm.train.config import TrainConfig, load_train_config
from embodied_mm.train.intervention import intervention_sample_weights
from embodied_mm.train.run import run_training
from embodied_mm.train.sampler import ResumableShardSampler
from embodied_mm.train.trainer import collate
from tests.train.conftest import HW

LENGTHS = [20, 16, 12]
PERSON = {0: range(5, 15), 2: range(0, 4)}  # episode -> the frames a person drove: 14 of 48


@pytest.fixture(scope="module")
def flagged_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("intervention") / "ds"
    features = build_features(
        state_dim=15, action_dim=7, cameras={"front": HW, "wrist": HW}, fps=20, codec="h264",
        extras={INTERVENTION: EXTRA_FEATURES[INTERVENTION]},
    )  # fmt: skip
    with DatasetWriter.create(root, features, 20, robot_type="synthetic") as writer:
        for i, n in enumerate(LENGTHS):
            episode = synthetic.synthetic_episode(n, seed=i, hw=HW)
            flags = np.zeros(n, dtype=np.uint8)
            flags[list(PERSON.get(i, []))] = 1
            episode.extras = {INTERVENTION: flags}
            writer.add_episode(episode)
    return root


def person_mask() -> np.ndarray:
    return np.concatenate(
        [np.isin(np.arange(n), list(PERSON.get(i, []))) for i, n in enumerate(LENGTHS)]
    )


def drawn(weights: torch.Tensor | None, epochs: int) -> np.ndarray:
    sampler = ResumableShardSampler(len(person_mask()), 4, seed=0, weights=weights)
    out = []
    for epoch in range(epochs):
        sampler.set_position(epoch)
        out += [i for batch in sampler for i in batch]
    return np.array(out)


def test_the_flags_reach_the_weights_and_the_draws_follow_the_weight(flagged_dataset):
    parts = [build_window_dataset(flagged_dataset, chunk_size=4)]
    person = person_mask()
    assert intervention_sample_weights(parts, 1.0, False) is None  # the plain shuffle
    weights = intervention_sample_weights(parts, 3.0, False)
    np.testing.assert_array_equal(weights.numpy(), np.where(person, 3.0, 1.0))
    draws = drawn(weights, epochs=300)  # 300 x 48 draws
    share = person[draws].mean()
    p = person.mean()
    assert share == pytest.approx(3 * p / (3 * p + 1 - p), abs=0.02)  # 0.55, not 0.29
    assert not person[drawn(intervention_sample_weights(parts, 0.0, False), 20)].any()
    assert person[drawn(intervention_sample_weights(parts, 1.0, True), 20)].all()
    # the order is a function of (seed, epoch): a resumed run draws the same batches
    np.testing.assert_array_equal(drawn(weights, 2), drawn(weights, 2))


def test_demos_without_the_feature_beside_a_flagged_dataset_weigh_one(
    flagged_dataset, tiny_dataset
):
    parts = [build_window_dataset(root, chunk_size=4) for root in (tiny_dataset, flagged_dataset)]
    demos = len(parts[0])
    weights = intervention_sample_weights(parts, 3.0, False).numpy()
    np.testing.assert_array_equal(weights[:demos], 1.0)
    np.testing.assert_array_equal(weights[demos:], np.where(person_mask(), 3.0, 1.0))
    only = intervention_sample_weights(parts, 1.0, True).numpy()
    np.testing.assert_array_equal(only, np.concatenate([np.zeros(demos), person_mask()]))


def test_weighting_a_dataset_without_the_feature_is_one_line(tiny_dataset, tmp_path):
    cfg = TrainConfig(dataset=[str(tiny_dataset)], out=str(tmp_path / "run"), steps=1,
                      batch_size=4, intervention_weight=2.0)  # fmt: skip
    with pytest.raises(UsageError, match=f"dataset {tiny_dataset} has no 'intervention'") as e:
        run_training(cfg)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training
    with pytest.raises(ConfigError, match="intervention_weight: expected float ≥ 0"):
        load_train_config(None, ["--intervention-weight", "-1"])


def test_the_weight_changes_what_is_trained_on(flagged_dataset, tmp_path):
    def first_loss(weight: float) -> float:
        cfg = TrainConfig(dataset=[str(flagged_dataset)], out=str(tmp_path / f"w{weight}"),
                          steps=1, batch_size=8, log_every=1, warmup_steps=1,
                          intervention_weight=weight)  # fmt: skip
        return run_training(cfg).final_loss

    plain, weighted = first_loss(1.0), first_loss(8.0)
    assert np.isfinite(plain) and np.isfinite(weighted)
    assert weighted != pytest.approx(plain, rel=1e-6)


def test_demos_and_a_flagged_dataset_train_together(flagged_dataset, tiny_dataset, tmp_path):
    # scripted demos have no intervention column: a batch that mixes them with flagged frames
    # gets 0 for them (it once stopped in collation); a sample without plan text (as from
    # deploy --record) gets "", unlabelled
    parts = [build_window_dataset(root, chunk_size=4) for root in (tiny_dataset, flagged_dataset)]
    demo, flagged = parts[0][0], parts[1][5]  # frame 5 of episode 0: a person drove it
    assert INTERVENTION not in demo and flagged[INTERVENTION].tolist() == [1]
    no_plan = {k: v for k, v in flagged.items() if k != PLAN}
    batch = collate([demo, no_plan])
    assert batch[INTERVENTION].tolist() == [[0], [1]]
    assert batch[PLAN] == [demo[PLAN], ""]
    cfg = TrainConfig(dataset=[str(tiny_dataset), str(flagged_dataset)], out=str(tmp_path / "run"),
                      steps=2, batch_size=16, warmup_steps=1, intervention_weight=3.0)  # fmt: skip
    result = run_training(cfg)
    assert result.step == 2 and np.isfinite(result.final_loss)
