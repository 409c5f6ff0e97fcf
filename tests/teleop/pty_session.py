"""A child process on a real pseudo-terminal: the test types key bytes into the master side,
the child reads them from its terminal (stdin) as a person's keyboard would send them."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time


class PtySession:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd=None) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.output = b""
        self.closed = False  # the child closed its side (reads give EIO)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "TERM": "xterm-256color", **(env or {})},
            cwd=cwd,
            close_fds=True,
            start_new_session=True,  # the pty becomes its controlling terminal
        )
        os.close(slave)

    def _read(self, timeout: float) -> bool:
        """Read what is there within ``timeout``; False when nothing was."""
        if self.closed:
            time.sleep(timeout)
            return False
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        self.closed = not data
        self.output += data
        return bool(data)

    def expect(self, text: str, timeout: float = 60.0) -> None:
        """Wait until ``text`` appears in the child's output (AssertionError with the output)."""
        end = time.monotonic() + timeout
        while text.encode() not in self.output:
            if time.monotonic() > end or (self.proc.poll() is not None and not self._read(0)):
                raise AssertionError(f"{text!r} not seen; output:\n{self.text}")
            self._read(0.05)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, timeout: float = 120.0) -> int:
        end = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > end:
                self.proc.kill()
                raise AssertionError(f"child did not exit; output:\n{self.text}")
            self._read(0.05)
        while self._read(0.05):
            pass
        return self.proc.returncode

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


PYTHON = sys.executable
