"""Training stages with a ``vlm`` recipe: the align stage trains the VLM's own projector
(a tiny random VLM is not aligned); a pretrained VLM skips it, and the command says so."""

import json

import pytest
import torch

from embodied_mm.errors import UsageError
from embodied_mm.policies import recipe_config
from embodied_mm.train.config import TrainConfig
from embodied_mm.train.run import build_policy, run_training


def _cfg(dataset, out, **kw) -> TrainConfig:
    base = dict(recipe="vlm-smolvlm-chunk", dataset=[str(dataset)], out=str(out), steps=2,
                batch_size=4, save_every=2, log_every=1, warmup_steps=1)  # fmt: skip
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_align_trains_only_the_vlms_projector_then_instruct_starts_from_it(tiny_dataset, tmp_path):
    align = _cfg(tiny_dataset, tmp_path / "align", stage="align", align_samples=8,
                 align_env=["embodied_mm/PickLift-v0"])  # fmt: skip
    result = run_training(align)
    rows = [json.loads(x) for x in (tmp_path / "align" / "metrics.jsonl").read_text().splitlines()]
    assert all("plan_ce" in r and "l1" not in r for r in rows if "loss" in r)

    from accelerate.utils import set_seed
    from safetensors.torch import load_file

    set_seed(align.seed)  # the same initial weights as the run
    before = build_policy(align, None).state_dict()
    after = load_file(str(result.checkpoint / "policy" / "model.safetensors"))
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("backbone.lm.model.connector.") for k in changed)

    instruct = _cfg(tiny_dataset, tmp_path / "it", init_from=str(result.checkpoint / "policy"))
    assert run_training(instruct).step == 2


def test_lora_and_freeze_flags_reach_the_vlm(tmp_path):
    cfg = _cfg(tmp_path, tmp_path / "run", lora_r=4, freeze=["vision"])
    policy = build_policy(cfg, None)
    assert policy.config.vlm.lora_rank == 4 and policy.config.vlm.freeze_vision
    assert cfg.policy.vlm.lora_rank == 0 and not cfg.policy.vlm.freeze_vision  # not saved back


def test_align_with_a_pretrained_vlm_says_it_is_not_needed(tmp_path):
    policy = recipe_config("vlm-smolvlm-chunk", size="base")
    cfg = _cfg(tmp_path, tmp_path / "run", stage="align", policy=policy)
    with pytest.raises(
        UsageError, match=r"--stage align is not needed: .*SmolVLM2.* already aligned"
    ):
        run_training(cfg)
    assert not (tmp_path / "run").exists()  # refused before the run dir is touched


def test_vlm_fields_are_flags_with_one_line_errors():
    from embodied_mm.model.config_io import ConfigError
    from embodied_mm.train.config import load_train_config

    cfg, _ = load_train_config(None, ["--recipe", "vlm-smolvlm-chunk", "--policy.vlm.keep_layers",
                                      "1", "--policy.vlm.freeze_vision", "true"])  # fmt: skip
    assert cfg.policy.vlm.keep_layers == 1 and cfg.policy.vlm.freeze_vision
    with pytest.raises(ConfigError, match=r"did you mean --policy\.vlm\.keep_layers\?"):
        load_train_config(None, ["--recipe", "vlm-smolvlm-chunk", "--policy.vlm.keep_layer", "1"])
    with pytest.raises(ConfigError, match=r"--policy\.vlm\.family: expected one of .*paligemma"):
        load_train_config(None, ["--recipe", "vlm-smolvlm-chunk", "--policy.vlm.family", "llava"])
    # a VLM with neither weights nor an architecture fails building, naming the field
    cfg, _ = load_train_config(None, ["--recipe", "vla-chunk", "--policy.vlm.family", "paligemma"])
    with pytest.raises(ConfigError, match=r"^vlm: set pretrained .* or hf_config"):
        build_policy(cfg, None)
