"""Key presses from the terminal on stdin, in raw mode, through ``blessed``.

Raw mode works over SSH with no display (no X server, no /dev/input access): the terminal
sends each key's bytes as it is pressed, and ``blessed`` decodes escape sequences (arrows,
Esc) into key names. In raw mode Ctrl-C arrives as a key (``KEY_CTRL_C``), not as SIGINT.
A terminal sends no key releases; holding a key sends auto-repeats.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from embodied_mm.errors import UsageError

QUERY_TIMEOUT_S = 0.2


def key_name(key: Any) -> str:
    """``KEY_RIGHT`` for a named key, else the character itself (``w``, `` ``)."""
    return str(key.name) if key.name else str(key)


class TerminalKeys:
    """Open: stdin goes into raw mode; :meth:`poll` returns the keys pressed since the last
    poll without waiting; :meth:`close` restores the terminal."""

    def __init__(self, esc_delay_s: float = 0.05) -> None:
        self.esc_delay_s = esc_delay_s
        self._term: Any = None
        self._raw: contextlib.ExitStack | None = None

    @property
    def is_open(self) -> bool:
        return self._raw is not None

    def open(self) -> None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise UsageError(
                "keyboard input needs a terminal on stdin and stdout (it reads keys in raw "
                "mode, also over SSH); run in a terminal, or use --teleop gamepad / leader"
            )
        # blessed asks the terminal about itself at start (5 s per unanswered query); keys
        # need none of the answers, and a terminal that does not answer would stall us 10 s.
        os.environ.setdefault("BLESSED_QUERY_TIMEOUT_SECONDS", str(QUERY_TIMEOUT_S))
        import blessed

        self._term = blessed.Terminal()
        stack = contextlib.ExitStack()
        stack.enter_context(self._term.raw())
        self._raw = stack

    def poll(self) -> list[str]:
        """Key names pressed since the last call (oldest first); [] when none."""
        if self._term is None:
            return []
        keys = []
        while True:
            key = self._term.inkey(timeout=0, esc_delay=self.esc_delay_s)
            if not key:
                return keys
            keys.append(key_name(key))

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self._term = None


def say(message: str) -> None:
    """One status line on stderr, readable in raw mode too (which needs ``\\r\\n``)."""
    sys.stderr.write(message + "\r\n")
    sys.stderr.flush()
