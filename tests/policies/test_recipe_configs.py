"""Every recipe preset through the one config decoder: dump → load gives it back; a wrong
field or type fails naming it (and the file it was read from)."""

import json

import pytest

from embodied_mm.model.config_io import ConfigError, config_to_dict, decode_config
from embodied_mm.model.configuration_vla import PolicyConfig
from embodied_mm.policies import RECIPES, recipe_config
from embodied_mm.policies.recipes import SIZES
from embodied_mm.train.config import TrainConfig, load_train_config

PRESETS = [(name, size) for name in RECIPES.names() for size in SIZES]


@pytest.mark.parametrize(("name", "size"), PRESETS)
def test_dump_then_load_gives_the_preset_back(name, size, tmp_path):
    preset = recipe_config(name, size)
    as_json = json.loads(json.dumps(config_to_dict(preset)))
    assert decode_config(PolicyConfig, as_json) == preset
    # and inside a training config, through a YAML file
    cfg = TrainConfig(recipe=name, size=size)
    cfg.save(tmp_path / "config.yaml")
    assert TrainConfig.from_yaml(tmp_path / "config.yaml") == cfg
    assert cfg.policy == preset


@pytest.mark.parametrize(("name", "size"), PRESETS)
def test_a_wrong_field_or_type_names_it_and_the_file(name, size, tmp_path):
    data = config_to_dict(recipe_config(name, size))
    data["backbone"]["lora_rank"] = "sixteen"
    with pytest.raises(ConfigError, match=r"^p.json: backbone.lora_rank: expected int ≥ 0"):
        decode_config(PolicyConfig, data, source="p.json")
    data["backbone"]["lora_rank"] = 4
    data["head"]["flow_step"] = 10
    with pytest.raises(ConfigError, match=r"head.flow_step: unknown field \(did you mean"):
        decode_config(PolicyConfig, data)
    path = tmp_path / "train.yaml"
    path.write_text(f"recipe: {name}\nsize: {size}\npolicy:\n  head: {{num_bins: many}}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: policy.head.num_bins: expected int ≥ 2"):
        load_train_config(path)


def test_overrides_in_python_go_through_the_same_checks():
    cfg = recipe_config("vla-flow", chunk_size=4, head={"flow_steps": 3})
    assert cfg.chunk_size == 4 and cfg.head.flow_steps == 3 and cfg.head.kind == "flow"
    with pytest.raises(ConfigError, match=r"^vla-chunk overrides: chunk_size: expected int ≥ 1"):
        recipe_config("vla-chunk", chunk_size="4")
    with pytest.raises(ConfigError, match=r"vision.image_size: expected int ≥ 1, got 0"):
        recipe_config("vla-chunk", vision={"image_size": 0})
