"""The one error type for bad user input.

A :class:`UsageError` says what was wrong and what is accepted, in one line. The command
line prints it as ``error: <message>`` and exits with code 2, without a traceback
(``embodied_mm.cli.main``); library callers catch it as the ``ValueError`` it is.
"""

from __future__ import annotations

import math


class UsageError(ValueError):
    """A bad argument, flag, config value or file: the message names it and what is accepted."""


def require_positive(name: str, value: float) -> None:
    """``value`` is a finite number > 0, else a :class:`UsageError` naming ``name``."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise UsageError(f"{name} must be a finite number > 0, got {value!r}")


def one_line(error: UsageError) -> str:
    """The message to show for ``error``. A DataLoader worker's error reaches the main process
    re-raised with the worker's traceback as its message; its last line is the original."""
    text = str(error).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
    return last.removeprefix(prefix)
