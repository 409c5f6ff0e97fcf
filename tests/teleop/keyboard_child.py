"""Run by the keyboard tests on a pseudo-terminal: prints each KeyboardTeleop reading as a
JSON line (``ready`` after the first, so that it comes before any key) until a stop event
(or 20 s). Prints ``releases`` when the terminal answered the kitty keyboard query."""

import json
import sys
import time

from embodied_mm.teleop.config import KeyboardConfig
from embodied_mm.teleop.keyboard import KeyboardTeleop

teleop = KeyboardTeleop(KeyboardConfig(key_hold_s=float(sys.argv[1])))
with teleop:
    sys.stdout.write("\r\n")  # after blessed's terminal queries, which end in no newline
    end = time.monotonic() + 20
    first = True
    while time.monotonic() < end:
        cmd = teleop.get_action()
        events = sorted(e.value for e in cmd.events)
        sys.stdout.write(
            json.dumps({"a": cmd.action.tolist(), "e": events, "t": time.monotonic()}) + "\r\n"
        )
        if first:
            sys.stdout.write(("releases" if teleop.keys.reports_releases else "ready") + "\r\n")
            first = False
        sys.stdout.flush()
        if "stop" in events or "abort" in events:
            break
        time.sleep(0.01)
