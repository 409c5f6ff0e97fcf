"""What ``eval`` shows while it runs: episodes done of the total, the running success rate
and the time left, on stderr.

On a terminal it is a tqdm bar (the library ``train``'s bar uses), redrawn in place. When
stderr is not a terminal (a CI log, a file, a pipe) redrawing would leave one long line of
carriage returns, so it writes a plain line, in tqdm's own format, each time another tenth
of the episodes has finished, and at the last one::

    eval PickLift-v0:  40%|####      | 20/50 [00:41<01:02,  2.06s/episode, success=17/20 (85%)]
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm


def _short(env_id: str) -> str:
    return env_id.rsplit("/", 1)[-1]


class EvalProgress:
    """Counts finished episodes; :meth:`episode_done` is called once per episode as it ends.

    ``total``: the episodes this process will run (all tasks). ``file``: where it writes
    (default stderr). ``interactive``: redraw a bar in place (default: ``file`` is a terminal).
    ``lines``: plain lines written when not interactive, at most this many (and the last).
    """

    def __init__(
        self,
        total: int,
        file: TextIO | None = None,
        interactive: bool | None = None,
        lines: int = 10,
    ) -> None:
        self.total = total
        self.file = file if file is not None else sys.stderr
        self.interactive = self.file.isatty() if interactive is None else interactive
        self.lines = max(lines, 1)
        self.done = 0
        self.successes = 0
        self.env_id = ""
        self._t0 = time.perf_counter()
        self._printed_tenths = 0
        self._bar: tqdm | None = None
        if self.interactive:
            self._bar = tqdm(total=total, desc="eval", unit="episode", file=self.file,
                             dynamic_ncols=True)  # fmt: skip

    @property
    def postfix(self) -> str:
        rate = self.successes / self.done if self.done else 0.0
        return f"success={self.successes}/{self.done} ({rate:.0%})"

    def episode_done(self, env_id: str, record: dict[str, Any]) -> None:
        """One episode of ``env_id`` ended (``record["success"]``: whether it succeeded)."""
        self.done += 1
        self.successes += bool(record["success"])
        self.env_id = env_id
        desc = f"eval {_short(env_id)}"
        if self._bar is not None:
            self._bar.set_description_str(desc, refresh=False)
            self._bar.set_postfix_str(self.postfix, refresh=False)
            self._bar.update(1)
            return
        step = self.done * self.lines // max(self.total, 1)
        if step > self._printed_tenths or self.done == self.total:
            self._printed_tenths = step
            line = tqdm.format_meter(self.done, self.total, time.perf_counter() - self._t0,
                                     prefix=desc, unit="episode", postfix=self.postfix,
                                     ncols=100, ascii=True)  # fmt: skip
            self.file.write(line + "\n")
            self.file.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> EvalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
