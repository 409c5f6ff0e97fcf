"""A checkpoint's config.json through the one decoder: a wrong field, type or value fails in
one line that names the file and the field; the shipped checkpoint still decodes."""

import json
from pathlib import Path

import pytest

from embodied_mm.cli.demo import shipped_checkpoint
from embodied_mm.model.config_io import ConfigError, config_to_dict, decode_config
from embodied_mm.model.configuration_vla import PolicyConfig
from embodied_mm.model.encoders import VisionConfig
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.model.pretrained import _migrate


def _config_dir(tmp_path: Path, change) -> Path:
    """A checkpoint dir whose config.json is the shipped one with ``change`` applied (the
    config is read first, so the other files are not needed to reach its errors)."""
    meta = json.loads((shipped_checkpoint() / "config.json").read_text())
    change(meta["config"])
    d = tmp_path / "policy"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(meta))
    return d


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c.update(chunk_size="eight"),
            "config.chunk_size: expected int ≥ 1, got 'eight'",
        ),
        (lambda c: c.update(chunk_size=-8), "config.chunk_size: expected int ≥ 1, got -8"),
        (lambda c: c.update(chunk_size=8.5), "config.chunk_size: expected int ≥ 1, got 8.5"),
        (lambda c: c.update(action_dim=True), "config.action_dim: expected int ≥ 1, got True"),
        (lambda c: c.update(chunk=8), r"config.chunk: unknown field \(did you mean chunk_size\?\)"),
        (lambda c: c["vision"].update(film="yes"), "config.vision.film: expected bool, got 'yes'"),
        (
            lambda c: c["vision"].update(hidden_size=0),
            "config.vision.hidden_size: expected int ≥ 1",
        ),
        (lambda c: c["vision"].update(family="vit"), "config.vision.family: expected one of "),
        (lambda c: c["backbone"].update(layers=2), "config.backbone.layers: unknown field"),
        (lambda c: c["head"].update(kind="diffusion"), "config.head.kind: expected one of chunk,"),
        (lambda c: c["proprio"].update(dropout=1.5), r"config.proprio.dropout: expected float in"),
        (lambda c: c.update(goal_dims=[8, -9]), "config.goal_dims.1: expected int ≥ 0, got -9"),
        (lambda c: c.update(norm_modes={"action": "zscore"}), "config.norm_modes.action: expected"),
        (lambda c: c.update(tokenizer=3), "config.tokenizer: expected str or null, got 3"),
        (lambda c: c.update(vision=[64]), "config.vision: expected a mapping of VisionConfig"),
    ],
)
def test_a_bad_config_json_names_the_file_and_the_field(tmp_path, change, message):
    d = _config_dir(tmp_path, change)
    with pytest.raises(ConfigError, match=message) as err:
        VLAPolicy.from_pretrained(d, device="cpu")
    text = str(err.value)
    assert text.startswith(f"{d / 'config.json'}: config.") and "\n" not in text


def test_the_shipped_config_decodes_and_round_trips():
    """The shipped checkpoint (config version 1) decodes through the migration unchanged,
    and dump → load gives the identical config."""
    meta = json.loads((shipped_checkpoint() / "config.json").read_text())
    config = decode_config(PolicyConfig, _migrate(meta)["config"])
    assert config.vision.family == "resnet" and config.std_floor_rel == 0.0
    assert config.vision.hf_config is not None  # the built tower's config, kept
    dumped = json.loads(json.dumps(config_to_dict(config)))
    assert decode_config(PolicyConfig, dumped) == config


def test_a_saved_policy_reloads_the_same_config(tmp_path):
    from embodied_mm.policies import make_policy

    policy = make_policy("vla-discrete", device="cpu", chunk_size=3)
    policy.save_pretrained(tmp_path / "p")
    assert VLAPolicy.from_pretrained(tmp_path / "p", device="cpu").config == policy.config


def test_configs_built_in_python_are_checked_where_they_are_made():
    with pytest.raises(ConfigError, match=r"^image_size: expected int ≥ 1, got 0$"):
        VisionConfig(image_size=0)
    with pytest.raises(ConfigError, match=r"^vision.film: expected bool, got 'true'$"):
        PolicyConfig(vision=_unchecked_vision(film="true"))


def _unchecked_vision(**fields) -> VisionConfig:
    """A VisionConfig changed after construction (as code can), checked by its PolicyConfig."""
    vision = VisionConfig()
    for name, value in fields.items():
        setattr(vision, name, value)
    return vision
