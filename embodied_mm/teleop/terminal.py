"""Key presses from the terminal on stdin, in raw mode, through ``blessed``.

Raw mode works over SSH with no display (no X server, no /dev/input access): the terminal
sends each key's bytes as it is pressed, and ``blessed`` decodes escape sequences (arrows,
Esc) into key names. In raw mode Ctrl-C arrives as a key (``KEY_CTRL_C``), not as SIGINT.

A plain terminal sends presses only (holding a key sends auto-repeats). A terminal that
speaks the kitty keyboard protocol (kitty, WezTerm, foot, Ghostty, ...; over SSH too, as it is
the local terminal that answers) also reports repeats and releases: it is asked at open, and
:attr:`TerminalKeys.reports_releases` says whether it answered.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any

from embodied_mm.errors import UsageError

QUERY_TIMEOUT_S = 0.2
_SUFFIXES = ("_RELEASED", "_REPEATED", "_PRESSED")


@dataclass(frozen=True)
class KeyEvent:
    key: str  # "w", " ", "KEY_RIGHT", "KEY_ESCAPE", "KEY_CTRL_C"
    kind: str = "press"  # "press" | "repeat" | "release"


def key_event(key: Any) -> KeyEvent:
    """One blessed keystroke as a :class:`KeyEvent`: printable keys by their character (also
    when the kitty protocol names them ``KEY_W``), other keys by blessed's name."""
    kind = "release" if key.released else "repeat" if key.repeated else "press"
    name = str(key.name) if key.name else ""
    for suffix in _SUFFIXES:
        name = name.removesuffix(suffix)
    if not name:
        return KeyEvent(str(key), kind)
    if name == "KEY_SPACE":
        return KeyEvent(" ", kind)
    if name.startswith("KEY_") and len(name) == 5:  # KEY_W: a letter or digit
        return KeyEvent(name[4].lower(), kind)
    return KeyEvent(name, kind)


class TerminalKeys:
    """Open: stdin goes into raw mode (and the kitty protocol's press/repeat/release reports
    when the terminal has them); :meth:`poll` returns the key events since the last poll
    without waiting; :meth:`close` restores the terminal."""

    def __init__(self, esc_delay_s: float = 0.05) -> None:
        self.esc_delay_s = esc_delay_s
        self.reports_releases = False
        self._term: Any = None
        self._modes: contextlib.ExitStack | None = None

    @property
    def is_open(self) -> bool:
        return self._modes is not None

    def open(self) -> None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise UsageError(
                "keyboard input needs a terminal on stdin and stdout (it reads keys in raw "
                "mode, also over SSH); run in a terminal, or use --teleop gamepad / leader"
            )
        # blessed asks the terminal about itself (5 s per unanswered query by default); a
        # terminal that does not answer would stall us.
        os.environ.setdefault("BLESSED_QUERY_TIMEOUT_SECONDS", str(QUERY_TIMEOUT_S))
        import blessed

        term = blessed.Terminal()
        modes = contextlib.ExitStack()
        modes.enter_context(term.raw())
        timeout = float(os.environ["BLESSED_QUERY_TIMEOUT_SECONDS"])
        if term.get_kitty_keyboard_state(timeout=timeout) is not None:
            modes.enter_context(
                term.enable_kitty_keyboard(
                    report_events=True, report_all_keys=True, timeout=timeout
                )
            )
            self.reports_releases = True
        self._term, self._modes = term, modes

    def poll(self) -> list[KeyEvent]:
        """Key events since the last call (oldest first); [] when none."""
        if self._term is None:
            return []
        events = []
        while True:
            key = self._term.inkey(timeout=0, esc_delay=self.esc_delay_s)
            if not key:
                return events
            events.append(key_event(key))

    def presses(self) -> list[str]:
        """The keys pressed since the last call (repeats and releases dropped)."""
        return [e.key for e in self.poll() if e.kind == "press"]

    def close(self) -> None:
        if self._modes is not None:
            self._modes.close()
            self._modes = None
        self._term = None
        self.reports_releases = False


def say(message: str) -> None:
    """One status line on stderr, readable in raw mode too (which needs ``\\r\\n``)."""
    sys.stderr.write(message + "\r\n")
    sys.stderr.flush()
