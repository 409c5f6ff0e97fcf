import json
import math

import pytest
import torch

from embodied_mm.policies.recipes import recipe_config
from embodied_mm.train.config import TrainConfig, load_train_config
from embodied_mm.train.run import FeatureMismatchError, build_policy, run_training
from embodied_mm.train.trainer import NonFiniteLossError, train
from tests.train.conftest import write_dataset


def _cfg(dataset, out, **kw) -> TrainConfig:
    base = dict(recipe="vla-chunk", dataset=[str(dataset)], out=str(out), steps=4,
                batch_size=4, save_every=2, log_every=1, warmup_steps=1)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_run_dir_holds_config_checkpoints_logs_and_plot(tiny_dataset, tmp_path):
    result = run_training(_cfg(tiny_dataset, tmp_path / "run"))
    run = tmp_path / "run"
    assert result.step == 4 and math.isfinite(result.final_loss)
    assert TrainConfig.from_yaml(run / "config.yaml").steps == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "last", "step-0000002", "step-0000004",
    ]  # fmt: skip
    assert (run / "checkpoints" / "last").resolve() == (run / "checkpoints" / "step-0000004")
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert (run / "loss.png").stat().st_size > 1000
    assert any((run / "tensorboard").iterdir())


def test_wrong_action_dim_fails_before_training(tmp_path):
    ds = write_dataset(tmp_path / "ds8", [12], action_dim=8)
    with pytest.raises(FeatureMismatchError, match=r"action has shape \(8,\), expected \(7,\)"):
        run_training(_cfg(ds, tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_lora_and_freeze_choose_what_trains(tiny_dataset, tmp_path):
    policy = build_policy(_cfg(tiny_dataset, tmp_path, lora_r=4, freeze=["vision"]), None)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    # the frozen tower stays fixed; the learned camera embedding still trains
    assert [n for n in trainable if n.startswith("vision.")] == ["vision.camera_embed"]
    backbone = [n for n in trainable if n.startswith("backbone.")]
    assert backbone and all("lora_" in n for n in backbone)


def test_nan_loss_stops_with_checkpoint_and_reason(tiny_dataset, tmp_path):
    cfg = _cfg(tiny_dataset, tmp_path / "run", steps=3, save_every=100)
    policy = build_policy(cfg, None)
    with torch.no_grad():
        policy.head.parameters().__next__().fill_(float("nan"))
    from embodied_mm.train.run import load_datasets

    dataset, _ = load_datasets(cfg, policy.config)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 1.*last good state saved"):
        train(cfg, policy, dataset)
    assert (tmp_path / "run" / "checkpoints" / "step-0000000" / "policy").is_dir()


@pytest.mark.slow
def test_in_training_evaluation_logs_success_and_saves_video(tiny_dataset, tmp_path):
    env_id = "embodied_mm/ReachObject-v0"
    cfg = _cfg(tiny_dataset, tmp_path / "run", steps=2, eval_every=2, eval_env=[env_id],
               eval_episodes=2)  # fmt: skip
    run_training(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if f"eval/success/{env_id}" in r]
    assert len(evals) == 1 and 0.0 <= evals[0][f"eval/success/{env_id}"] <= 1.0
    assert list((tmp_path / "run" / "eval" / "step-0000002").glob("*.mp4"))


@pytest.mark.slow
def test_align_stage_trains_projectors_on_captions_then_instruct_starts_from_it(
    tiny_dataset, tmp_path
):
    align = _cfg(tiny_dataset, tmp_path / "align", stage="align", align_samples=8, steps=2,
                 align_env=["embodied_mm/PickLift-v0"])  # fmt: skip
    result = run_training(align)
    rows = [json.loads(x) for x in (tmp_path / "align" / "metrics.jsonl").read_text().splitlines()]
    assert all("plan_ce" in r and "l1" not in r for r in rows)  # caption text only

    from accelerate.utils import set_seed
    from safetensors.torch import load_file

    set_seed(align.seed)  # the same initial weights as the run
    before = build_policy(align, None).state_dict()
    after = load_file(str(result.checkpoint / "policy" / "model.safetensors"))
    changed = {k.split(".")[0] for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"projector"}  # encoders and backbone stayed frozen

    instruct = _cfg(
        tiny_dataset, tmp_path / "it", steps=1, init_from=str(result.checkpoint / "policy")
    )
    run_training(instruct)


def test_policy_fields_reach_the_built_policy_and_not_back(tiny_dataset, tmp_path):
    cfg, _ = load_train_config(None, ["--policy.chunk_size", "4", "--policy.vision.image_size",
                                      "32", "--lora_r", "4", "--freeze", "vision"])  # fmt: skip
    policy = build_policy(cfg, None)
    assert policy.config.chunk_size == 4 and policy.config.vision.image_size == 32
    assert policy.config.backbone.lora_rank == 4 and policy.config.vision.freeze
    # the run's choices and what building fills in stay out of the run's saved config
    assert cfg.policy.backbone.lora_rank == 0 and not cfg.policy.vision.freeze
    assert cfg.policy.backbone.hf_config is None


def test_policy_stats_use_every_frame_not_averaged_episode_quantiles(tmp_path):
    """Episodes that move in opposite directions: the exact q01/q99 span both, where the
    LeRobot-style mean of per-episode quantiles would sit near zero and clip the motion."""
    import numpy as np

    from embodied_mm.data import synthetic
    from embodied_mm.data.torch_dataset import build_window_dataset
    from embodied_mm.train.run import policy_stats

    root = write_dataset(tmp_path / "ds", [])
    from embodied_mm.data.writer import DatasetWriter

    writer = DatasetWriter.open_for_resume(root)
    for i, sign in enumerate((1.0, -1.0, 1.0, -1.0)):
        ep = synthetic.synthetic_episode(20, seed=i, hw=(32, 32))
        ep.action[:] = sign * 0.4
        writer.add_episode(ep)
    stats = policy_stats([build_window_dataset(root)])
    assert stats["action"]["q01"][0] == pytest.approx(-0.4)
    assert stats["action"]["q99"][0] == pytest.approx(0.4)
    on_disk = build_window_dataset(root).stats["action"]
    assert abs(float(np.asarray(on_disk["q99"]).reshape(-1)[0])) < 0.4  # the averaged one


def test_goal_loss_trains_from_the_episode_end_state(tiny_dataset, tmp_path):
    """goal_loss_weight > 0: the run serves each episode's final state and logs goal_mse."""
    cfg = _cfg(
        tiny_dataset, tmp_path / "run", policy=recipe_config("vla-chunk", goal_loss_weight=0.5)
    )
    result = run_training(cfg)
    assert math.isfinite(result.final_loss)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["goal_mse"] > 0 for r in rows if "loss" in r)


def test_ground_stage_trains_the_image_path_on_the_goal_alone(tiny_dataset, tmp_path):
    goal = recipe_config("vla-chunk", goal_loss_weight=1.0, goal_dims=[0, 1])
    with pytest.raises(ValueError, match="the ground stage trains the goal head"):
        run_training(_cfg(tiny_dataset, tmp_path / "no-goal", stage="ground", batch_size=2))
    cfg = _cfg(
        tiny_dataset, tmp_path / "run", stage="ground", policy=goal, batch_size=2
    )  # 3 episodes: 3 first frames
    policy = build_policy(cfg, None)
    trainable = {n.split(".")[0] for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable == {"vision", "goal_head", "backbone"}
    assert all("embed" in n for n, p in policy.backbone.named_parameters() if p.requires_grad)
    run_training(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert steps and all("goal_mse" in r and "l1" not in r for r in steps)


def test_goal_only_serves_each_episodes_first_frame_without_actions(tiny_dataset):
    from embodied_mm.data.torch_dataset import build_window_dataset
    from embodied_mm.features import FINAL_STATE
    from embodied_mm.train.run import GoalOnly

    ds = GoalOnly([build_window_dataset(tiny_dataset, chunk_size=2, final_state=True)])
    assert len(ds) == 3  # episodes of 20, 16 and 12 frames
    items = [ds[i] for i in range(3)]
    assert [int(x["frame_index"]) for x in items] == [0, 0, 0]
    assert all(FINAL_STATE in x and "action" not in x and "plan" not in x for x in items)
