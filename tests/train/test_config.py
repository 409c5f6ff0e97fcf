import pytest

from embodied_mm.train.config import TrainConfig, apply_overrides, parse_cli_overrides


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
