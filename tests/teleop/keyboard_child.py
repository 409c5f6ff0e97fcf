"""Run by the keyboard tests on a pseudo-terminal: prints each KeyboardTeleop reading as a
JSON line until a stop event (or 20 s)."""

import json
import sys
import time

from embodied_mm.teleop.config import KeyboardConfig
from embodied_mm.teleop.keyboard import KeyboardTeleop

teleop = KeyboardTeleop(KeyboardConfig(key_hold_s=float(sys.argv[1])))
with teleop:
    sys.stdout.write("ready\r\n")
    sys.stdout.flush()
    end = time.monotonic() + 20
    while time.monotonic() < end:
        cmd = teleop.get_action()
        events = sorted(e.value for e in cmd.events)
        sys.stdout.write(json.dumps({"a": cmd.action.tolist(), "e": events}) + "\r\n")
        sys.stdout.flush()
        if "stop" in events or "abort" in events:
            break
        time.sleep(0.01)
