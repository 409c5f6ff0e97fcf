"""The status-wait margin of the servo buses: the SDK's timing on real adapters, more on a pty."""

import os

import pytest

from embodied_mm.runtime.dynamixel.bus import DynamixelBus
from embodied_mm.runtime.feetech.bus import FeetechBus
from embodied_mm.runtime.servo_bus import PTY_TIMEOUT_MARGIN_MS, is_pseudo_terminal


@pytest.fixture
def pty_path():
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_a_pty_is_told_apart_from_a_usb_adapter(pty_path, tmp_path):
    assert is_pseudo_terminal(pty_path)
    link = tmp_path / "ttyEMU"
    link.symlink_to(pty_path)  # as socat or a udev rule would name it
    assert is_pseudo_terminal(str(link))
    assert not is_pseudo_terminal("/dev/ttyUSB0") and not is_pseudo_terminal("/dev/ttyACM0")


@pytest.mark.parametrize("bus_class", [DynamixelBus, FeetechBus])
def test_the_margin_is_added_on_a_pty_only(bus_class, pty_path):
    assert bus_class(pty_path).port.margin_ms == PTY_TIMEOUT_MARGIN_MS
    assert bus_class("/dev/ttyUSB0").port.margin_ms == 0.0
    assert bus_class(pty_path, timeout_margin_ms=5.0).port.margin_ms == 5.0  # the caller's say
