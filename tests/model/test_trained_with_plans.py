"""The ``trained_with_plans`` marker: set by training on labelled frames beside actions, saved
in config.json, and what decides whether the commands ask a policy for plans by default."""

from __future__ import annotations

import json

import pytest

from embodied_mm.cli.demo import shipped_checkpoint
from embodied_mm.errors import UsageError
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.runtime.inference import LocalPolicy
from tests.model.helpers import make_batch, tiny_config, tiny_stats


def _policy() -> VLAPolicy:
    return VLAPolicy(tiny_config(), stats=tiny_stats(), device="cpu")


def test_a_labelled_batch_with_actions_marks_the_policy_and_the_mark_is_saved(tmp_path):
    policy = _policy()
    policy.compute_loss(make_batch(4))  # actions, no plan labels
    assert policy.trained_with_plans is False
    captions = {k: v for k, v in make_batch(4, plans=True).items() if k != "action"}
    policy.compute_loss(captions)  # text alone (alignment captions): not sub-task labels
    assert policy.trained_with_plans is False
    policy.save_pretrained(tmp_path / "plain")
    assert (
        json.loads((tmp_path / "plain" / "config.json").read_text())["trained_with_plans"] is False
    )
    assert LocalPolicy.from_checkpoint(tmp_path / "plain", with_plan=None).with_plan is False

    policy.compute_loss(make_batch(4, plans=True))
    assert policy.trained_with_plans is True
    policy.save_pretrained(tmp_path / "planned")
    loaded = VLAPolicy.from_pretrained(tmp_path / "planned", device="cpu")
    assert loaded.trained_with_plans is True
    assert LocalPolicy(loaded, with_plan=None).with_plan is True  # the commands' default
    assert LocalPolicy(loaded, with_plan=False).with_plan is False  # --no-plan
    assert LocalPolicy(loaded).with_plan is False  # the API's default is unchanged


def test_the_shipped_checkpoint_is_marked_and_a_bad_mark_is_one_line(tmp_path):
    import shutil

    assert VLAPolicy.from_pretrained(shipped_checkpoint(), device="cpu").trained_with_plans
    bad = tmp_path / "bad"
    shutil.copytree(shipped_checkpoint(), bad)
    meta = json.loads((bad / "config.json").read_text())
    meta["trained_with_plans"] = "yes"
    (bad / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="trained_with_plans must be true or false, got 'yes'"):
        VLAPolicy.from_pretrained(bad, device="cpu")
