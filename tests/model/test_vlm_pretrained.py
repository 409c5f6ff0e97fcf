"""``vlm`` policies on disk: a VLM loads by directory (as a hub checkpoint would), a saved
policy gives identical outputs in a fresh process, a config that does not fit the weights
fails naming the files."""

import json
import shutil

import pytest
import torch

from embodied_mm.errors import UsageError
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.model.vlm import VLMConfig
from embodied_mm.model.vlm_families import CLIP_MEAN, CLIP_STD
from tests.model.helpers import (
    make_batch,
    nudge_off_init,
    obs_only,
    outputs_in_fresh_process,
    tiny_stats,
)
from tests.model.vlm_helpers import IMAGE, VLM_KINDS, save_tiny_vlm, tiny_vlm_config

SAVED = [("smolvlm", "chunk", {"keep_layers": 1}), ("paligemma", "flow", {}),
         ("qwen2_vl", "chunk", {"lora_rank": 2})]  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm-policies")
    out = []
    for family, head, fields in SAVED:
        torch.manual_seed(1)
        policy = VLAPolicy(tiny_vlm_config(family, head, **fields), tiny_stats(), device="cpu")
        nudge_off_init(policy)
        policy.eval().save_pretrained(root / family)
        out.append((root / family, policy))
    return out


@pytest.mark.slow
def test_fresh_process_gives_identical_outputs(saved, tmp_path):
    child = outputs_in_fresh_process(tmp_path / "out.safetensors", [d for d, _ in saved], False)
    obs = obs_only(make_batch(3, seed=7))
    for i, (_, policy) in enumerate(saved):
        assert torch.equal(child[f"chunk{i}"], policy.predict_chunk(obs)), SAVED[i]


def test_saved_config_records_the_vlm_and_processor_its_prompt(saved):
    directory, policy = saved[0]
    meta = json.loads((directory / "config.json").read_text())
    vlm = meta["config"]["vlm"]
    assert vlm["hf_config"]["text_config"]["num_hidden_layers"] == 1
    assert vlm["image_size"] == IMAGE and vlm["image_mean"] == [0.5] * 3
    steps = {
        s["name"]: s["params"]
        for s in json.loads((directory / "processor.json").read_text())["steps"]
    }
    assert steps["vlm_prompt"]["prefix_ids"] == policy.backbone.prefix_ids
    assert steps["camera_pixels"]["size"] == IMAGE
    assert "tokenize_task" not in steps


def test_vlm_config_that_does_not_fit_the_weights_fails_naming_the_files(saved, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(saved[1][0], bad)
    meta = json.loads((bad / "config.json").read_text())
    meta["config"]["vlm"]["hf_config"]["text_config"]["intermediate_size"] = 96
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"model\.safetensors"):
        VLAPolicy.from_pretrained(bad, device="cpu")


def test_vlm_hf_config_of_another_family_fails_naming_the_field(saved, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(saved[0][0], bad)
    meta = json.loads((bad / "config.json").read_text())
    meta["config"]["vlm"]["family"] = "paligemma"
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(
        UsageError, match=r"config\.json: config\.vlm\.hf_config\.model_type: expected paligemma"
    ):
        VLAPolicy.from_pretrained(bad, device="cpu")


@pytest.mark.parametrize("family", VLM_KINDS)
def test_vlm_loads_from_a_checkpoint_directory(family, tmp_path):
    model = save_tiny_vlm(family, tmp_path / "hub")
    cfg = tiny_vlm_config(family)
    cfg.vlm = VLMConfig(family=family, pretrained=str(tmp_path / "hub"),
                        image_size=IMAGE if family.startswith("qwen") else None)  # fmt: skip
    policy = VLAPolicy(cfg, tiny_stats(), device="cpu")
    # the checkpoint's weights, tokenizer and pixel statistics
    ours = policy.backbone.lm.state_dict()
    for name, p in model.state_dict().items():
        assert torch.equal(ours[name], p), name
    assert len(policy.tokenizer) == model.config.get_text_config().vocab_size
    mean, std = (CLIP_MEAN, CLIP_STD) if family.startswith("qwen") else ((0.5,) * 3, (0.5,) * 3)
    assert policy.config.vlm.image_mean == pytest.approx(mean)
    assert policy.config.vlm.image_std == pytest.approx(std)
    assert policy.config.vlm.image_size == IMAGE
    # and the policy saves and reloads without the hub directory
    policy.eval().save_pretrained(tmp_path / "policy")
    shutil.rmtree(tmp_path / "hub")
    again = VLAPolicy.from_pretrained(tmp_path / "policy", device="cpu").eval()
    obs = obs_only(make_batch(2, seed=4))
    assert torch.equal(again.predict_chunk(obs), policy.predict_chunk(obs))


def test_a_directory_of_another_family_fails_naming_it(tmp_path):
    save_tiny_vlm("paligemma", tmp_path / "hub")
    cfg = tiny_vlm_config("smolvlm")
    cfg.vlm = VLMConfig(family="smolvlm", pretrained=str(tmp_path / "hub"))
    with pytest.raises(UsageError, match=r"vlm\.pretrained: .*hub is a 'paligemma' model"):
        VLAPolicy(cfg, tiny_stats(), device="cpu")
