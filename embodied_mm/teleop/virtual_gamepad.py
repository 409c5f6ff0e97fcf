"""A virtual gamepad inside SDL itself (``SDL_JoystickAttachVirtual``, SDL >= 2.0.14), for
tests and benchmarks without a pad: pygame's joystick API reads it exactly as a USB pad,
through SDL's event loop. It is driven through ctypes calls into the libSDL2 that pygame's
wheel ships (already loaded by pygame, so the same library instance)."""

from __future__ import annotations

import ctypes
import glob
import os

from embodied_mm.teleop.gamepad import init_pygame_joysticks

JOYSTICK_TYPE_GAMECONTROLLER = 1


def _sdl():
    pygame = init_pygame_joysticks()
    libs = os.path.join(os.path.dirname(pygame.__file__), os.pardir, "pygame.libs")
    found = glob.glob(os.path.join(libs, "libSDL2-2*.so*"))
    if not found:
        raise RuntimeError(f"pygame's libSDL2 not found under {libs}")
    lib = ctypes.CDLL(found[0])  # already loaded by pygame: the same instance
    lib.SDL_GetError.restype = ctypes.c_char_p
    lib.SDL_JoystickAttachVirtual.argtypes = [ctypes.c_int] * 4
    lib.SDL_JoystickAttachVirtual.restype = ctypes.c_int
    lib.SDL_JoystickDetachVirtual.argtypes = [ctypes.c_int]
    lib.SDL_JoystickOpen.argtypes = [ctypes.c_int]
    lib.SDL_JoystickOpen.restype = ctypes.c_void_p
    lib.SDL_JoystickClose.argtypes = [ctypes.c_void_p]
    lib.SDL_JoystickSetVirtualAxis.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int16]
    lib.SDL_JoystickSetVirtualButton.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
    return pygame, lib


class VirtualGamepad:
    """Six axes, twelve buttons; :meth:`tilt` an axis to -1..1, :meth:`press` a button."""

    def __init__(self) -> None:
        self.pygame, self.lib = _sdl()
        self.index = self.lib.SDL_JoystickAttachVirtual(JOYSTICK_TYPE_GAMECONTROLLER, 6, 12, 0)
        if self.index < 0:
            raise RuntimeError(f"SDL_JoystickAttachVirtual: {self.lib.SDL_GetError()}")
        self.handle = self.lib.SDL_JoystickOpen(self.index)
        self.pygame.event.pump()

    def tilt(self, axis: int, value: float) -> None:
        raw = max(-32768, min(32767, round(value * 32767)))
        if self.lib.SDL_JoystickSetVirtualAxis(self.handle, axis, raw) != 0:
            raise RuntimeError(self.lib.SDL_GetError())

    def press(self, button: int, down: bool = True) -> None:
        if self.lib.SDL_JoystickSetVirtualButton(self.handle, button, int(down)) != 0:
            raise RuntimeError(self.lib.SDL_GetError())

    def close(self) -> None:
        self.lib.SDL_JoystickClose(self.handle)
        self.lib.SDL_JoystickDetachVirtual(self.index)
        self.pygame.event.pump()
