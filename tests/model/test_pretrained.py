"""save_pretrained / from_pretrained: identical outputs in a fresh process; clear errors."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from embodied_mm.model.modeling_vla import VLAPolicy
from tests.model.helpers import (
    make_batch,
    nudge_off_init,
    obs_only,
    outputs_in_fresh_process,
    tiny_config,
    tiny_stats,
)

# One head per backbone family, so all heads and all families are covered once.
SAVED = [("chunk", "qwen2"), ("discrete", "llama"), ("flow", "gpt2")]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("policies")
    policies = []
    for head, family in SAVED:
        torch.manual_seed(1)
        cfg = tiny_config(head, family)
        cfg.backbone.lora_rank = 2 if family == "llama" else 0  # LoRA weights round-trip too
        policy = VLAPolicy(cfg, stats=tiny_stats(), device="cpu").eval()
        nudge_off_init(policy)
        policy.save_pretrained(root / f"{head}-{family}")
        policies.append((root / f"{head}-{family}", policy))
    return policies


@pytest.mark.slow
def test_fresh_process_gives_identical_outputs(saved, tmp_path):
    child = outputs_in_fresh_process(tmp_path / "out.safetensors", [d for d, _ in saved], True)
    obs = obs_only(make_batch(3, seed=7))
    for i, (_, policy) in enumerate(saved):
        assert torch.equal(child[f"chunk{i}"], policy.predict_chunk(obs)), SAVED[i]
        lengths = [len(p) for p in policy.generate_plan(obs, max_new_tokens=6)]
        assert child[f"plan{i}"].tolist() == lengths


def test_saved_files_and_config(saved):
    directory, policy = saved[1]
    names = {p.name for p in directory.iterdir()}
    assert {"model.safetensors", "config.json", "stats.json", "tokenizer"} <= names
    assert not list(directory.rglob("*.bin")) and not list(directory.rglob("*.pt"))
    meta = json.loads((directory / "config.json").read_text())
    cfg = meta["config"]
    assert (
        cfg["head"]["kind"] == "discrete" and cfg["backbone"]["hf_config"]["model_type"] == "llama"
    )
    assert cfg["vision"]["hf_config"]["model_type"] == "siglip_vision_model"
    assert json.loads((directory / "stats.json").read_text()) == json.loads(
        json.dumps(tiny_stats())
    )
    loaded = VLAPolicy.from_pretrained(directory, device="cpu")
    assert loaded.config == policy.config
    state = load_file(directory / "model.safetensors")
    assert any("lora_A" in k for k in state)


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_truncated_weights_fail_naming_the_file(saved, tmp_path):
    d = _copy(saved[0][0], tmp_path / "p")
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"model\.safetensors.*(corrupt|truncated)"):
        VLAPolicy.from_pretrained(d, device="cpu")


def test_corrupt_weights_fail_naming_the_file(saved, tmp_path):
    d = _copy(saved[0][0], tmp_path / "p")
    weights = d / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte inside a tensor: still a valid safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model\.safetensors.*corrupt"):
        VLAPolicy.from_pretrained(d, device="cpu")


def test_weights_that_do_not_fit_the_config_fail_naming_the_file(saved, tmp_path):
    d = _copy(saved[0][0], tmp_path / "p")
    meta = json.loads((d / "config.json").read_text())
    other = _copy(saved[2][0], tmp_path / "q")  # a gpt2 policy's weights under a qwen2 config
    (d / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    meta["weights_sha256"] = json.loads((other / "config.json").read_text())["weights_sha256"]
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"cannot load policy weights .*model\.safetensors"):
        VLAPolicy.from_pretrained(d, device="cpu")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("config.json", '{"format": "embodied-mm-policy", "config": {"head": '),
        ("config.json", '{"format": "something-else"}'),
        ("stats.json", "not json"),
        ("tokenizer/tokenizer.json", '{"version": "1.0", "model": {'),
    ],
)
def test_corrupt_side_files_fail_naming_the_file(saved, tmp_path, name, content):
    d = _copy(saved[0][0], tmp_path / "p")
    (d / name).write_text(content)
    expect = name.split("/")[0].replace(".", r"\.")
    with pytest.raises(ValueError, match=expect):
        VLAPolicy.from_pretrained(d, device="cpu")


def test_missing_directory_fails_naming_config(tmp_path):
    with pytest.raises(ValueError, match=r"config\.json"):
        VLAPolicy.from_pretrained(tmp_path / "nowhere", device="cpu")


def test_version_1_checkpoint_loads_without_the_std_floor(saved, tmp_path):
    """Checkpoints saved before the std floor existed were trained without one: they load
    with ``std_floor_rel = 0`` and compute exactly what they computed before."""
    d = _copy(saved[0][0], tmp_path / "p")
    stats = json.loads((d / "stats.json").read_text())
    stats["observation.state"]["std"][0] = 1e-4  # a dim the floor would clamp
    stats["observation.state"]["min"] = [-1.0] * len(stats["observation.state"]["std"])
    stats["observation.state"]["max"] = [1.0] * len(stats["observation.state"]["std"])
    (d / "stats.json").write_text(json.dumps(stats))
    meta = json.loads((d / "config.json").read_text())
    assert meta["version"] == 2 and meta["config"]["std_floor_rel"] == 0.01
    del meta["config"]["std_floor_rel"]
    meta["version"] = 1
    (d / "config.json").write_text(json.dumps(meta))
    (d / "processor.json").unlink()  # version-1 checkpoints predate processor files too
    old = VLAPolicy.from_pretrained(d, device="cpu")
    assert old.config.std_floor_rel == 0.0
    x = torch.zeros(1, len(stats["observation.state"]["std"]))
    x[0, 0] = 1e-3
    assert old.normalizer.normalize("observation.state", x)[0, 0] == pytest.approx(10.0, rel=1e-3)
    meta["version"] = 99
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"config\.json.*version is 99"):
        VLAPolicy.from_pretrained(d, device="cpu")
