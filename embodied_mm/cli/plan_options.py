"""The options every policy-running command shares for instructions and plans: their help
texts and the run log's line saying whether plans are asked for (and why)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

INSTRUCTION_HELP = (
    "The instruction the policy gets, replacing the env's sampled one in every episode "
    "(a colour or object the scene lacks is allowed; the log says which was used)."
)
PLAN_HELP = (
    "Ask the policy for its sub-task text (plan) with every chunk, shown and logged; "
    "default: when the checkpoint was trained with plan labels."
)


def plan_line(asked: bool, given: bool | None, export: bool = False) -> str:
    """``plans: on (the checkpoint was trained with plan labels)`` and the like; ``export``:
    the policy is an ONNX export (which holds no plan text)."""
    if export:
        return "plans: off (an ONNX export holds no plan text)"
    if given is not None:
        return f"plans: {'on' if asked else 'off'} (--{'plan' if given else 'no-plan'})"
    if asked:
        return "plans: on (the checkpoint was trained with plan labels; --no-plan turns them off)"
    return "plans: off (the checkpoint was not trained with plan labels; --plan asks anyway)"


def is_export(checkpoint: str | Path) -> bool:
    """``checkpoint`` is an ``embodied-mm export`` directory (ONNX), not a PyTorch one."""
    from embodied_mm.export.manifest import MANIFEST_FILE

    return (Path(checkpoint) / MANIFEST_FILE).is_file()


def episode_line(record: dict[str, Any]) -> str:
    """One episode of ``demo``/``rollout`` for the run log: its seed, the instruction used
    (and whose), the plans with the step each began, the outcome."""
    from embodied_mm.runtime.instruction import Instruction
    from embodied_mm.runtime.plan_log import plan_summary

    plans = plan_summary(record.get("plan_log") or [])
    outcome = "success" if record.get("success") else "failure"
    return (
        f"episode {record['seed']}: {Instruction.from_record(record).line()}"
        + (f"; plans: {plans}" if plans else "")
        + f"; {outcome} after {record['steps']} steps"
    )


def live_status(stream: TextIO | None = None) -> Callable[[int, Any], None] | None:
    """A status line rewritten in place on a terminal (``stream``, default stderr) after
    every few control steps: the step and the current plan; None when not a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None

    def show(step: int, loop: Any) -> None:
        if step % 4 == 0:
            plan = loop.executor.plan
            stream.write(f"\r\033[Kstep {step:4d}" + (f" | plan: {plan[:60]}" if plan else ""))
            stream.flush()

    return show


def end_status(stream: TextIO | None = None) -> None:
    """Clear the :func:`live_status` line (before printing the episodes' lines)."""
    stream = stream or sys.stderr
    if stream.isatty():
        stream.write("\r\033[K")
        stream.flush()
