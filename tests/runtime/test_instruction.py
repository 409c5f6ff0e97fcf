"""The instruction a run uses (the user's or the env's) and the plan log with its steps."""

from __future__ import annotations

import pytest

from embodied_mm.errors import UsageError
from embodied_mm.runtime.instruction import Instruction, check_instruction
from embodied_mm.runtime.plan_log import PlanLog, plan_summary


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_or_blank_instructions_are_refused(text):
    with pytest.raises(UsageError, match="--instruction must be a non-empty text"):
        check_instruction(text)


def test_an_instruction_is_kept_as_given_but_for_surrounding_whitespace():
    assert check_instruction(None) is None
    assert check_instruction("  pick up the teal giraffe ") == "pick up the teal giraffe"


def test_the_users_instruction_replaces_the_envs_and_says_so():
    told = Instruction.of("pick up the teal giraffe", "grab the purple block")
    assert told.record() == {"task": "pick up the teal giraffe", "instruction_source": "user",
                             "env_task": "grab the purple block"}  # fmt: skip
    assert told.line() == ('instruction: "pick up the teal giraffe" (--instruction; the env '
                           'sampled "grab the purple block")')  # fmt: skip
    assert Instruction.from_record(told.record()) == told
    env = Instruction.of(None, "grab the purple block")
    assert env.record() == {"task": "grab the purple block", "instruction_source": "env"}
    assert env.line() == 'instruction: "grab the purple block" (the env\'s)'
    assert Instruction.of(None, None).line() == 'instruction: "" (none given: pass --instruction)'


def test_the_plan_log_keeps_each_change_with_its_first_step():
    log = PlanLog()
    for step, plan in enumerate([None, "", "reach", "reach", "grasp", "grasp", "reach"]):
        log.note(step, plan)
    assert log.entries == [{"step": 2, "plan": "reach"}, {"step": 4, "plan": "grasp"},
                           {"step": 6, "plan": "reach"}]  # fmt: skip
    assert log.texts == ["reach", "grasp", "reach"] and log.current == "reach"
    assert plan_summary(log.entries, limit=2) == "reach (step 2) → grasp (step 4) → ... (1 more)"
    assert plan_summary([]) == ""
