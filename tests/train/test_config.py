import pytest

from embodied_mm.train.config import (
    TrainConfig,
    apply_overrides,
    config_digest,
    digest_differences,
    parse_cli_overrides,
    plan_resume,
)


def test_every_field_overridable_from_cli_strings(tmp_path):
    args = ["--lr", "1e-4", "--freeze=vision,backbone", "--stage", "align", "--keep-last", "3"]
    cfg = apply_overrides(TrainConfig(), parse_cli_overrides(args))
    assert cfg.lr == 1e-4
    assert cfg.freeze == ["vision", "backbone"]
    assert cfg.stage == "align"
    assert cfg.keep_last == 3


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(TrainConfig(), {"steps": 5, "dataset": ["a", "b"]})
    cfg.save(tmp_path / "config.yaml")
    assert TrainConfig.from_yaml(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"learning_rate": 1}, "unknown training option 'learning_rate'"),
        (
            {"stage": "pretrain"},
            r"stage: 'pretrain' is not one of \['align', 'ground', 'instruct'\]",
        ),
        ({"steps": "many"}, "steps: cannot read 'many' as int"),
    ],
)
def test_bad_values_name_the_field(values, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(TrainConfig(), values)


def test_option_without_value_fails():
    with pytest.raises(ValueError, match="needs a value"):
        parse_cli_overrides(["--lr"])


def test_policy_overrides_from_json_on_the_command_line():
    args = ["--policy-overrides", '{"chunk_size": 4, "vision": {"image_size": 32}}']
    cfg = apply_overrides(TrainConfig(), parse_cli_overrides(args))
    assert cfg.policy_overrides == {"chunk_size": 4, "vision": {"image_size": 32}}
    with pytest.raises(ValueError, match=r"policy_overrides: .* is not a JSON object"):
        apply_overrides(TrainConfig(), {"policy_overrides": "{chunk"})


def test_resume_applies_only_the_resumable_fields_and_lists_the_kept_ones():
    saved = apply_overrides(TrainConfig(), {"steps": 8, "lr": 3e-4, "out": "old/path"})
    asked = apply_overrides(TrainConfig(), {"steps": 12, "lr": 1e-3, "keep_last": 5, "out": "r"})
    plan = plan_resume(saved, asked, given={"steps", "lr", "keep-last", "out"})
    assert (plan.config.steps, plan.config.keep_last, plan.config.lr) == (12, 5, 3e-4)
    assert plan.config.out == "r"  # where the run was found
    assert plan.applied == [("keep_last", 2, 5), ("steps", 8, 12)]
    assert plan.kept == [("lr", 3e-4, 1e-3)]
    # fields not given keep the saved values silently (the CLI's defaults are not requests)
    assert plan_resume(saved, TrainConfig(out="r"), given={"out"}).config.steps == 8


def test_digest_ignores_the_resumable_fields_also_in_older_digests():
    import dataclasses
    import json

    cfg = TrainConfig(steps=8, keep_last=2)
    older = json.dumps(
        {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("steps", "out")},
        sort_keys=True,
    )  # what checkpoints held before: log_every, save_every and keep_last included
    moved = dataclasses.replace(cfg, steps=20, keep_last=9, save_every=3, log_every=7)
    assert digest_differences(older, moved) == []
    assert digest_differences(config_digest(cfg), moved) == []
    changed = dataclasses.replace(cfg, lr=1.0, batch_size=3)
    assert digest_differences(older, changed) == ["batch_size", "lr"]
