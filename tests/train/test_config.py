"""TrainConfig: flags, YAML files and the recipe preset through one typed, validated path."""

import dataclasses
import json

import pytest

from embodied_mm.model.config_io import ConfigError
from embodied_mm.policies.recipes import recipe_config
from embodied_mm.train.config import (
    TrainConfig,
    config_digest,
    digest_differences,
    load_train_config,
    plan_resume,
)


def _flags(*args: str) -> TrainConfig:
    return load_train_config(None, list(args))[0]


def test_every_field_is_a_flag_with_dashes_or_underscores():
    cfg = _flags("--lr", "1e-4", "--freeze=vision,backbone", "--stage", "align",
                 "--keep-last", "3", "--init_from", "runs/a/policy", "--out", "2024")  # fmt: skip
    assert cfg.lr == 1e-4
    assert cfg.freeze == ["vision", "backbone"]
    assert cfg.stage == "align"
    assert cfg.keep_last == 3
    assert cfg.init_from == "runs/a/policy"
    assert cfg.out == "2024"  # a text field keeps its text


def test_nested_flags_set_nested_policy_fields_over_the_recipe_preset():
    cfg = _flags("--recipe", "vla-flow", "--policy.chunk_size", "16", "--policy.vision.film",
                 "true", "--policy.goal_dims", "[8, 9]", "--policy.head.noise_seed", "null")  # fmt: skip
    preset = recipe_config("vla-flow")
    assert cfg.policy.chunk_size == 16 and cfg.policy.vision.film is True
    assert cfg.policy.goal_dims == [8, 9] and cfg.policy.head.noise_seed is None
    # every field not given is the preset's
    assert cfg.policy.head.kind == "flow"
    assert (
        dataclasses.replace(
            cfg.policy,
            chunk_size=preset.chunk_size,
            goal_dims=preset.goal_dims,
            vision=preset.vision,
            head=preset.head,
        )
        == preset
    )
    assert _flags("--recipe", "vla-discrete", "--size", "base").policy == recipe_config(
        "vla-discrete", "base"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy.chunk_size", "eight"], "--policy.chunk_size: expected int ≥ 1, got 'eight'"),
        (["--policy.chunk_size", "0"], "--policy.chunk_size: expected int ≥ 1, got 0"),
        (["--policy.vision.film", "maybe"], "--policy.vision.film: expected bool, got 'maybe'"),
        (
            ["--policy.proprio.dropout", "1"],
            r"--policy.proprio.dropout: expected float in \[0, 1\)",
        ),
        (
            ["--policy.head.kind", "mlp"],
            "--policy.head.kind: expected one of chunk, discrete, flow",
        ),
        (["--steps", "0"], "--steps: expected int ≥ 1, got 0"),
        (["--batch-size", "-3"], "--batch_size: expected int ≥ 1, got -3"),
        (["--lr", "nan"], "--lr: expected float > 0, got nan"),
        (["--freeze", "vision,brain"], "--freeze.1: expected one of vision, backbone, proprio"),
        (["--recipe", "vla-nope"], "--recipe: expected one of vla-chunk, vla-discrete, vla-flow"),
        (["--size", "huge"], "--size: expected one of tiny, base, got 'huge'"),
        (["--stage", "pretrain"], "--stage: invalid choice: 'pretrain'"),
        (
            ["--policy.chunk", "4"],
            "unknown option --policy.chunk; did you mean --policy.chunk_size",
        ),
        (["--learning-rate", "1"], "unknown option --learning_rate"),
        (["--lr"], "--lr: expected one argument"),
        (["stray"], "unexpected argument 'stray'"),
    ],
)
def test_a_bad_flag_fails_in_one_line_naming_the_flag(args, message):
    with pytest.raises(ConfigError, match=message) as err:
        _flags(*args)
    assert "\n" not in str(err.value)


def test_old_style_options_say_what_to_write_instead(tmp_path):
    with pytest.raises(ConfigError, match=r"--policy-overrides is gone: .* --policy.chunk_size 16"):
        _flags("--policy-overrides", '{"chunk_size": 4}')
    with pytest.raises(ConfigError, match="choose the recipe with --recipe vla-flow"):
        _flags("--policy", "vla-flow")
    old = tmp_path / "old.yaml"
    old.write_text("policy: vla-chunk\nsteps: 3\n")
    with pytest.raises(ConfigError, match=r"old.yaml: policy: .* recipe: vla-chunk"):
        load_train_config(old)


def test_yaml_then_flags_field_by_field(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(
        "recipe: vla-flow\nsteps: 30\nlr: 1e-3\n"
        "policy:\n  chunk_size: 4\n  vision: {film: true, image_size: 32}\n"
    )
    cfg, given = load_train_config(path, ["--steps", "7", "--policy.vision.image_size", "48"])
    assert (cfg.steps, cfg.lr) == (7, 1e-3)  # the flag wins; the file's other fields stay
    assert cfg.policy.chunk_size == 4 and cfg.policy.vision.film
    assert cfg.policy.vision.image_size == 48
    assert cfg.policy.head.kind == "flow"  # the file's recipe, under both
    assert cfg.policy.backbone == recipe_config("vla-flow").backbone
    assert given == {"recipe", "steps", "lr", "policy.chunk_size", "policy.vision.film",
                     "policy.vision.image_size"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: many\n", "train.yaml: steps: expected int ≥ 1, got 'many'"),
        ("learning_rate: 1\n", "train.yaml: learning_rate: unknown field"),
        (
            "policy:\n  chunk: 3\n",
            r"train.yaml: policy.chunk: unknown field \(did you mean chunk_size",
        ),
        ("policy:\n  vision: {film: 3}\n", "train.yaml: policy.vision.film: expected bool, got 3"),
        ("policy:\n  cameras: front\n", "train.yaml: policy.cameras: expected list"),
        ("stage: pretrain\n", "train.yaml: stage: expected one of 'align', 'ground', 'instruct'"),
        ("- steps\n", "train.yaml: expected a mapping of fields"),
        ("steps: [1\n", "train.yaml: not valid YAML"),
    ],
)
def test_a_bad_yaml_file_fails_naming_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "train.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_train_config(path)
    assert "\n" not in str(err.value)


def test_the_flag_is_named_when_it_overrides_a_good_file_value(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("policy: {chunk_size: 4}\n")
    with pytest.raises(ConfigError, match=r"^--policy.chunk_size: expected int ≥ 1, got -1$"):
        load_train_config(path, ["--policy.chunk_size", "-1"])


def test_saved_config_reloads_identically(tmp_path):
    cfg = _flags("--steps", "5", "--dataset", "a,b", "--recipe", "vla-discrete",
                 "--policy.max_text_tokens", "12")  # fmt: skip
    cfg.save(tmp_path / "config.yaml")
    assert TrainConfig.from_yaml(tmp_path / "config.yaml") == cfg
    # the saved policy is complete: another recipe default does not leak in on reload
    assert "recipe: vla-discrete" in (tmp_path / "config.yaml").read_text()


def test_python_construction_is_checked_and_fills_the_preset():
    assert TrainConfig(recipe="vla-flow").policy == recipe_config("vla-flow")
    with pytest.raises(ConfigError, match=r"^steps: expected int ≥ 1, got 0$"):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match=r"^recipe: expected one of vla-chunk"):
        TrainConfig(recipe="vla-nope")


def test_resume_applies_only_the_resumable_fields_and_lists_the_kept_ones():
    saved = _flags("--steps", "8", "--lr", "3e-4", "--out", "old/path")
    asked, given = load_train_config(
        None, ["--steps", "12", "--lr", "1e-3", "--keep-last", "5", "--out", "r",
               "--policy.chunk_size", "4"],
    )  # fmt: skip
    plan = plan_resume(saved, asked, given=given)
    assert (plan.config.steps, plan.config.keep_last, plan.config.lr) == (12, 5, 3e-4)
    assert plan.config.out == "r"  # where the run was found
    assert plan.config.policy.chunk_size == 8
    assert plan.applied == [("keep_last", 2, 5), ("steps", 8, 12)]
    assert plan.kept == [("lr", 3e-4, 1e-3), ("policy.chunk_size", 8, 4)]
    # fields not given keep the saved values silently (the CLI's defaults are not requests)
    assert plan_resume(saved, TrainConfig(out="r"), given={"out"}).config.steps == 8


def test_digest_ignores_the_resumable_fields_also_in_older_digests():
    cfg = TrainConfig(steps=8, keep_last=2)
    older = json.loads(config_digest(cfg))
    older.update(log_every=cfg.log_every, save_every=cfg.save_every, keep_last=cfg.keep_last)
    older = json.dumps(older, sort_keys=True)  # earlier digests held these three
    moved = dataclasses.replace(cfg, steps=20, keep_last=9, save_every=3, log_every=7)
    assert digest_differences(older, moved) == []
    assert digest_differences(config_digest(cfg), moved) == []
    changed = dataclasses.replace(cfg, lr=1.0, batch_size=3)
    assert digest_differences(older, changed) == ["batch_size", "lr"]
    policy = dataclasses.replace(cfg.policy, chunk_size=4)
    assert digest_differences(older, dataclasses.replace(cfg, policy=policy)) == [
        "policy.chunk_size"
    ]


@pytest.mark.parametrize(
    "added",
    [
        ("intervention_weight", "intervention_only"),
        ("dataset_mix",),
        ("rtc_max_delay", "policy.head.rtc_max_delay", "policy.head.rtc_max_guidance"),
    ],
)
def test_a_digest_from_before_a_field_was_added_resumes_at_its_default(added):
    cfg = TrainConfig(steps=8)
    older = json.loads(config_digest(cfg))
    for name in added:
        del older[name]  # written before the field existed
    older = json.dumps(older, sort_keys=True)
    assert digest_differences(older, cfg) == []
    if "rtc_max_delay" in added:
        rtc = _flags("--rtc-max-delay", "2")
        assert "rtc_max_delay" in digest_differences(older, rtc)
    elif "dataset_mix" in added:
        mixed = dataclasses.replace(cfg, dataset_mix="equal")
        assert digest_differences(older, mixed) == ["dataset_mix"]
    else:
        weighted = dataclasses.replace(cfg, intervention_weight=3.0)
        assert digest_differences(older, weighted) == ["intervention_weight"]


def test_a_run_saved_by_the_earlier_layout_resumes(tmp_path):
    """Before the policy was part of TrainConfig, a run saved ``policy: NAME`` with
    ``policy_overrides`` in its config.yaml, and its checkpoints a digest of those: both read
    as today's config, so the run resumes; a user's --config file in that layout is refused."""
    saved = tmp_path / "config.yaml"
    saved.write_text(
        "policy: vla-flow\nsize: tiny\npolicy_overrides:\n  chunk_size: 4\n"
        "  vision: {film: true}\ndataset: [a]\nsteps: 8\nlr: 0.001\n"
    )
    cfg = TrainConfig.from_yaml(saved)
    assert cfg.recipe == "vla-flow" and cfg.steps == 8 and cfg.lr == 1e-3
    assert cfg.policy == recipe_config("vla-flow", chunk_size=4, vision={"film": True})
    digest = {k: v for k, v in json.loads(config_digest(cfg)).items() if "." not in k}
    digest.pop("recipe")
    digest.update(policy="vla-flow", policy_overrides={"chunk_size": 4, "vision": {"film": True}})
    old_digest = json.dumps(digest, sort_keys=True)  # what such a checkpoint holds
    assert digest_differences(old_digest, cfg) == []
    changed = dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy, chunk_size=8))
    assert digest_differences(old_digest, changed) == ["policy.chunk_size"]
    with pytest.raises(ConfigError, match="choose the recipe with recipe: vla-flow"):
        load_train_config(saved)
