"""Saving and rebuilding a pipeline: the same steps and outputs; bad files fail by name."""

import json

import numpy as np
import pytest
import torch

from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.processor.core import PROCESSOR_FILE, Pipeline, ProcessorError, Resources
from tests.model.helpers import make_batch, obs_only, tiny_config, tiny_stats


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return VLAPolicy(tiny_config("chunk", "qwen2"), stats=tiny_stats(), device="cpu").eval()


def resources(policy) -> Resources:
    return Resources(tiny_stats(), policy.tokenizer.backend_tokenizer)


def test_the_pipeline_is_saved_as_named_steps(policy, tmp_path):
    path = policy.processor.pipeline.save(tmp_path)
    data = json.loads(path.read_text())
    names = [s["name"] for s in data["steps"]]
    assert names == [
        "observation_check", "tokenize_task", "camera_pixels", "normalize", "unnormalize",
    ]  # fmt: skip
    pixels = data["steps"][2]["params"]
    assert pixels["size"] == 32 and pixels["mean"] == [0.5, 0.5, 0.5]  # the siglip tower's
    assert "stats" not in path.read_text()  # the stats stay in stats.json


def test_save_load_gives_the_same_steps_and_outputs(policy, tmp_path):
    policy.processor.pipeline.save(tmp_path)
    loaded = Pipeline.load(tmp_path, resources(policy))
    assert loaded.to_dict() == policy.processor.pipeline.to_dict()
    obs = obs_only(make_batch(3, seed=2))
    ref = Pipeline.run(policy.processor.pipeline.select("input"), obs)
    got = Pipeline.run(loaded.select("input"), obs)
    assert sorted(got) == sorted(ref)
    for key, value in ref.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(got[key], value), key
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[key], value)
        else:
            assert got[key] == value, key
    rebuilt = VLAPolicy(policy.config, tiny_stats(), policy.tokenizer, "cpu", processor=loaded)
    rebuilt.load_state_dict(policy.state_dict())
    assert torch.equal(rebuilt.eval().predict_chunk(obs), policy.predict_chunk(obs))


def _write(tmp_path, policy, edit) -> None:
    data = policy.processor.pipeline.to_dict()
    edit(data)
    (tmp_path / PROCESSOR_FILE).write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["steps"][1].update(name="spell_check"),
         r"unknown processor step 'spell_check'; known: camera_pixels, normalize"),
        (lambda d: d["steps"][1]["params"].update(max_tokens="32"),
         r"step 'tokenize_task': parameter 'max_tokens' must be int; got '32'"),
        (lambda d: d["steps"][2]["params"].update(sizes=64),
         r"step 'camera_pixels': unknown parameter\(s\) \['sizes'\]"),
        (lambda d: d["steps"][2]["params"].pop("size"),
         r"step 'camera_pixels': missing parameter 'size'"),
        (lambda d: d["steps"][3]["params"]["modes"].update({"observation.state": "zscore"}),
         r"step 'normalize': unknown normalisation modes"),
        (lambda d: d["steps"][0]["params"].update(state_dim=0),
         r"step 'observation_check': state_dim must be >= 1"),
        (lambda d: d.update(version=7), r"version is 7; this release reads 1"),
    ],
)  # fmt: skip
def test_a_bad_processor_file_fails_naming_the_step_and_the_file(policy, tmp_path, edit, message):
    _write(tmp_path, policy, edit)
    with pytest.raises(ProcessorError, match=message) as err:
        Pipeline.load(tmp_path, resources(policy))
    assert str(tmp_path / PROCESSOR_FILE) in str(err.value)


def test_unreadable_processor_file_names_it(policy, tmp_path):
    (tmp_path / PROCESSOR_FILE).write_text("{not json")
    with pytest.raises(ProcessorError, match=r"cannot read processor file .*processor\.json"):
        Pipeline.load(tmp_path, resources(policy))


def test_a_checkpoint_whose_pipeline_disagrees_with_its_config_fails(policy, tmp_path):
    policy.save_pretrained(tmp_path)
    _write(tmp_path, policy, lambda d: d["steps"][2]["params"].update(size=64))
    with pytest.raises(ProcessorError, match=r"camera_pixels\.size: 64 != 32") as err:
        VLAPolicy.from_pretrained(tmp_path, device="cpu")
    assert "processor.json disagrees with" in str(err.value) and "config.json" in str(err.value)


def test_a_checkpoint_without_a_processor_file_builds_the_configs_pipeline(policy, tmp_path):
    policy.save_pretrained(tmp_path)
    (tmp_path / PROCESSOR_FILE).unlink()
    old = VLAPolicy.from_pretrained(tmp_path, device="cpu").eval()
    assert old.processor.pipeline.to_dict() == policy.processor.pipeline.to_dict()
    obs = obs_only(make_batch(2, seed=4))
    assert torch.equal(old.predict_chunk(obs), policy.predict_chunk(obs))
