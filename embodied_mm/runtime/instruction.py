"""The instruction a policy is given: the user's ``--instruction``, or the one the env sampled.

``demo``, ``rollout``, ``eval`` and ``deploy`` take ``--instruction TEXT``: it replaces the env's
sampled instruction in every episode (the observation the policy sees, the videos, the
per-episode records) and is the only instruction a real robot has. An instruction naming a
colour or object the scene does not hold is not an error (it is how one probes what the policy
does with it); the run log says which instruction each run used and where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embodied_mm.errors import UsageError

USER, ENV, NONE = "user", "env", "none"  # where an episode's instruction came from


def check_instruction(text: str | None) -> str | None:
    """``--instruction`` as given (surrounding whitespace dropped), or None when not given.

    Raises:
        UsageError: for empty or whitespace-only text.
    """
    if text is None:
        return None
    if not text.strip():
        raise UsageError(
            f"--instruction must be a non-empty text, e.g. 'pick up the red cube'; got {text!r}"
        )
    return text.strip()


@dataclass(frozen=True)
class Instruction:
    """What one episode's policy was told: ``text``, its ``source`` (:data:`USER`,
    :data:`ENV` or :data:`NONE`: neither, a real robot without ``--instruction``) and, when the
    user's text replaced it, the env's own (``env_text``)."""

    text: str
    source: str
    env_text: str | None = None

    @classmethod
    def of(cls, user: str | None, env: str | None) -> Instruction:
        """The user's text when given (the env's kept beside it), else the env's."""
        if user is not None:
            return cls(user, USER, env or None)
        if env:
            return cls(env, ENV)
        return cls("", NONE)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Instruction:
        """The instruction of an episode record (:meth:`record`'s keys; an older record
        without ``instruction_source`` counts as the env's)."""
        text = str(record.get("task") or "")
        return cls(text, record.get("instruction_source", ENV if text else NONE),
                   record.get("env_task"))  # fmt: skip

    def record(self) -> dict[str, str]:
        """The keys an episode record carries: ``task`` (the text used),
        ``instruction_source`` and, when replaced, ``env_task``."""
        out = {"task": self.text, "instruction_source": self.source}
        if self.env_text is not None:
            out["env_task"] = self.env_text
        return out

    def line(self) -> str:
        """The run log's line, e.g. ``instruction: "pick up the red cube" (--instruction;
        the env sampled "grab the purple block")``."""
        if self.source == USER:
            env = f'; the env sampled "{self.env_text}"' if self.env_text else ""
            return f'instruction: "{self.text}" (--instruction{env})'
        if self.source == ENV:
            return f'instruction: "{self.text}" (the env\'s)'
        return 'instruction: "" (none given: pass --instruction)'
