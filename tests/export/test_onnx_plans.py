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


def test_the_run_log_says_why_an_export_gives_no_plans(exported_chunk):
    from embodied_mm.cli.plan_options import is_export, plan_line

    assert is_export(exported_chunk.export) and not is_export(exported_chunk.checkpoint)
    assert plan_line(False, None, export=True) == "plans: off (an ONNX export holds no plan text)"
    assert plan_line(False, None).endswith("(the checkpoint was not trained with plan labels; "
                                           "--plan asks anyway)")  # fmt: skip
    assert plan_line(True, True) == "plans: on (--plan)"
