"""An ONNX export holds no text decoder: plans are off by default and --plan is refused."""

from __future__ import annotations

import pytest

from embodied_mm.errors import UsageError
from embodied_mm.eval.plan_match import evaluate_plans
from embodied_mm.export.ort_policy import OrtPolicy
from embodied_mm.runtime.inference import LocalPolicy


def test_an_export_never_plans_by_default_and_refuses_plan(exported_chunk, tmp_path):
    assert LocalPolicy(OrtPolicy(exported_chunk.export), with_plan=None).with_plan is False
    with pytest.raises(UsageError, match="--plan needs the PyTorch checkpoint"):
        LocalPolicy.from_checkpoint(exported_chunk.export, with_plan=True)
    with pytest.raises(UsageError, match="is an ONNX export: plans need the PyTorch checkpoint"):
        evaluate_plans(exported_chunk.export, [], 1)
