"""The plan texts a policy gave during an episode, each with the control step it began at.

The executor keeps the plan of the chunk it plays (``ChunkExecutor.plan``); a :class:`PlanLog`
is fed it after every step and keeps one entry per change. Episode records carry both the
texts in order (``plans``) and the entries with their steps (``plan_log``).
"""

from __future__ import annotations

from typing import Any


class PlanLog:
    """``note(step, plan)`` after every step; consecutive repeats are one entry."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []  # {"step": int, "plan": str}, in order

    def note(self, step: int, plan: str | None) -> None:
        """The plan in force at control step ``step`` (None or "": no plan yet)."""
        if plan and (not self.entries or self.entries[-1]["plan"] != plan):
            self.entries.append({"step": int(step), "plan": plan})

    @property
    def texts(self) -> list[str]:
        """The plan texts in the order they began (a text may recur after another)."""
        return [e["plan"] for e in self.entries]

    @property
    def current(self) -> str | None:
        return self.entries[-1]["plan"] if self.entries else None


def plan_summary(entries: list[dict[str, Any]], limit: int = 6) -> str:
    """``"move above the red cube (step 0) → lower to it (step 14) → ..."``, the first
    ``limit`` entries of a ``plan_log`` ("" for none)."""
    shown = [f"{e['plan']} (step {e['step']})" for e in entries[:limit]]
    more = len(entries) - limit
    return " → ".join(shown) + (f" → ... ({more} more)" if more > 0 else "")
