"""Letting other threads run between any two lines of a function, to test it for races.

CPython 3.11 switches threads only at calls and backward jumps, so a check-then-read of a
dict is in practice never interrupted, although nothing guarantees that: a free-threaded
interpreter, a different bytecode or a garbage collection running a finaliser can interrupt it
anywhere. A trace function that sleeps before each line of the function under test makes
every such interleaving happen, so a race shows up in a few iterations instead of never.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from types import CodeType, FrameType
from typing import Any


@contextlib.contextmanager
def pausing_inside(code: CodeType, pause_s: float = 0.002) -> Iterator[None]:
    """Threads started inside the block sleep ``pause_s`` before each line of ``code`` (for
    their whole life); other code and other threads are not traced."""

    def each_line(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            time.sleep(pause_s)  # releases the GIL: any other thread may run here
        return each_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        return each_line if frame.f_code is code else None

    previous = threading.gettrace()
    threading.settrace(on_call)
    try:
        yield
    finally:
        threading.settrace(previous)  # type: ignore[arg-type]
