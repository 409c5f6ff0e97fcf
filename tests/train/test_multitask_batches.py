"""Multi-task training: with several datasets (one task each), every batch the trainer feeds
the policy mixes frames of the tasks (the sampler shuffles across the concatenated datasets)."""

from __future__ import annotations

from pathlib import Path

from embodied_mm.data import synthetic
from embodied_mm.data.lerobot_format import build_features
from embodied_mm.data.writer import DatasetWriter
from embodied_mm.train.config import TrainConfig
from embodied_mm.train.run import build_policy, load_datasets
from embodied_mm.train.trainer import train
from tests.train.conftest import HW

TASKS = {"stack": "stack the red cube on the blue cube", "push": "push the green can to the goal"}


def _task_dataset(root: Path, task: str, seed: int) -> Path:
    features = build_features(state_dim=15, action_dim=7, cameras={"front": HW, "wrist": HW},
                              fps=20, codec="h264")  # fmt: skip
    with DatasetWriter.create(root, features, 20, robot_type="synthetic") as writer:
        for i in range(2):
            writer.add_episode(synthetic.synthetic_episode(16, seed=seed + i, hw=HW, task=task))
    return root


def test_every_training_batch_holds_frames_of_both_tasks(tmp_path):
    roots = [_task_dataset(tmp_path / name, text, 10 * k) for k, (name, text) in
             enumerate(TASKS.items())]  # fmt: skip
    cfg = TrainConfig(recipe="vla-chunk", dataset=[str(r) for r in roots], out=str(tmp_path / "run"),
                      steps=4, batch_size=8, save_every=100, log_every=1, warmup_steps=1)  # fmt: skip
    policy = build_policy(cfg, None)
    dataset, parts = load_datasets(cfg, policy.config)
    assert [len(p) for p in parts] == [32, 32]
    seen: list[list[str]] = []
    compute_loss = policy.compute_loss

    def spy(batch):  # the real loss; only the batch's instructions are noted
        seen.append(list(batch["task"]))
        return compute_loss(batch)

    policy.compute_loss = spy
    train(cfg, policy, dataset)
    assert len(seen) == 4
    for tasks in seen:
        assert set(tasks) == set(TASKS.values()), tasks  # both tasks in every batch
    share = sum(t == TASKS["stack"] for tasks in seen for t in tasks) / (4 * 8)
    assert 0.25 <= share <= 0.75
