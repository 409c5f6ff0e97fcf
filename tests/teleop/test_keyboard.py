"""The keyboard teleoperator reading a real pseudo-terminal in raw mode (blessed)."""

import json
import time

import pytest

from embodied_mm.errors import UsageError
from embodied_mm.teleop.config import KeyboardConfig
from embodied_mm.teleop.keyboard import KeyboardTeleop
from tests.teleop.pty_session import PYTHON, PtySession

CHILD = "tests.teleop.keyboard_child"
HOLD_S = 0.5  # key_hold_s: long enough that a loaded machine still reads w and f overlapping


def readings(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"a"')]


@pytest.fixture
def session():
    s = PtySession([PYTHON, "-m", CHILD, str(HOLD_S)])
    try:
        s.expect("ready")
        yield s
    finally:
        s.close()


def test_keys_move_the_axes_then_stop_after_the_hold_time(session):
    session.type(b"w")
    time.sleep(0.1)
    session.type(b"f")  # z down, while x still moves
    time.sleep(2 * HOLD_S)  # both past key_hold_s: still
    session.type(b"c\x1b[C")  # close the gripper, then → (next)
    time.sleep(0.1)
    session.type(b"\x1b")  # Esc: stop
    assert session.wait(30) == 0
    rows = readings(session.text)
    actions = [r["a"] for r in rows]
    assert actions[0] == [0, 0, 0, 0, 0, 0, -1]  # nothing pressed yet, gripper open
    assert any(a[0] == 0.25 and a[2] == 0 for a in actions)  # x only
    assert any(a[0] == 0.25 and a[2] == -0.25 for a in actions)  # x and z down
    i_close = next(i for i, a in enumerate(actions) if a[6] == 1)
    assert actions[i_close - 1][:6] == [0] * 6  # the hold time passed: no motion
    assert ["next"] in [r["e"] for r in rows]
    assert rows[-1]["e"] == ["stop"]


def test_space_halts_at_once_and_ctrl_c_is_an_abort_not_a_signal(session):
    session.type(b"a")
    time.sleep(0.1)
    session.type(b" ")
    time.sleep(0.1)
    session.type(b"\x03")
    assert session.wait(30) == 0  # SIGINT would have killed it with a traceback
    rows = readings(session.text)
    i_a = next(i for i, r in enumerate(rows) if r["a"][1] == 0.25)
    after = [r["a"][1] for r in rows[i_a:]]
    halted = after.index(0)
    # halted by the space, within ~0.1 s of pressing a: well before the hold time
    assert all(v == 0 for v in after[halted:])
    assert rows[-1]["e"] == ["abort"]


def test_without_a_terminal_connecting_names_the_problem():
    with pytest.raises(UsageError, match="needs a terminal on stdin"):
        KeyboardTeleop().connect()  # pytest's stdin is not a terminal


def test_a_bad_key_map_is_refused():
    with pytest.raises(UsageError, match="keyboard key 'x'"):
        KeyboardConfig(keys={"x": (6, 1)})
    with pytest.raises(UsageError, match="translation_scale"):
        KeyboardConfig(translation_scale=2.0)


KITTY_QUERY = b"\x1b[?u"
# the terminal's answers: kitty keyboard flags 0, then the cursor position blessed asks after it
KITTY_ANSWER = b"\x1b[?0u\x1b[1;1R"


def kitty_session() -> PtySession:
    """The child on a terminal that speaks the kitty keyboard protocol (the test answers its
    queries as kitty would)."""
    s = PtySession([PYTHON, "-m", CHILD, str(HOLD_S)], env={"BLESSED_QUERY_TIMEOUT_SECONDS": "1"})
    answered, end = 0, time.monotonic() + 30
    while b"releases" not in s.output and b"ready" not in s.output:
        assert time.monotonic() < end, s.text
        s._read(0.02)
        while answered < s.output.count(KITTY_QUERY):
            s.type(KITTY_ANSWER)
            answered += 1
    return s


def test_with_the_kitty_protocol_a_key_moves_until_released():
    s = kitty_session()
    try:
        assert "releases" in s.text, s.text
        s.type(b"\x1b[119u")  # w pressed
        time.sleep(2 * HOLD_S)  # held past key_hold_s, no auto-repeat: still moving
        s.type(b"\x1b[119;1:3u")  # w released
        time.sleep(0.2)
        s.type(b"\x1b[97u")  # a pressed, its release lost
        time.sleep(1.5)  # past release_timeout_s (1 s)
        s.type(b"\x1b[27u")  # Esc
        assert s.wait(30) == 0
    finally:
        s.close()
    rows = readings(s.text)
    xs = [r["a"][0] for r in rows]
    ys = [r["a"][1] for r in rows]
    start = xs.index(0.25)
    stop = xs.index(0.0, start)
    # moved for the whole 1 s the key was held (well past key_hold_s), then stopped at release
    assert rows[stop]["t"] - rows[start]["t"] > 1.6 * HOLD_S
    assert all(x == 0 for x in xs[stop:])
    assert 0.25 in ys and ys[-1] == 0  # the lost release timed out
    assert "\x1b[=0;1u" in s.text  # the terminal's keyboard mode restored at exit
