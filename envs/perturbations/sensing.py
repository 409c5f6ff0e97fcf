"""Robot and sensing factors: initial joint noise, image noise and blur, dropped camera
frames, action latency. Image factors act on what the policy sees (and what videos show);
the simulator's state is untouched."""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from embodied_mm.envs.perturbations.base import Factor, Pixels
from embodied_mm.envs.robot import JOINT_LIMITS


class JointNoise(Factor):
    """The arm starts from the home pose plus N(0, ``value``²) rad per joint (training: the
    home pose exactly)."""

    name = "joint_noise"
    group = "robot"
    description = "initial joint noise (rad, std)"
    unit = "rad"
    levels = {1: 0.05, 2: 0.1, 3: 0.2}  # noqa: RUF012

    def initial_joints(self, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noisy = q + rng.normal(0.0, float(self.value), size=q.shape)
        return np.clip(noisy, JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])


class ImageNoise(Factor):
    """Gaussian pixel noise of std ``value`` (0-255 scale) on every camera."""

    name = "image_noise"
    group = "robot"
    description = "pixel noise (std, 0-255)"
    unit = "std"
    levels = {1: 8.0, 2: 20.0, 3: 40.0}  # noqa: RUF012

    def observe(self, pixels: Pixels, rng: np.random.Generator) -> Pixels:
        out = {}
        for cam, img in pixels.items():  # (H, W, 3) uint8
            noisy = img.astype(np.float32) + rng.normal(0.0, float(self.value), size=img.shape)
            out[cam] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        return out


class Blur(Factor):
    """Gaussian blur of std ``value`` pixels on every camera (defocus, motion smear)."""

    name = "blur"
    group = "robot"
    description = "gaussian blur (px, std)"
    unit = "px"
    levels = {1: 1.0, 2: 2.0, 3: 3.0}  # noqa: RUF012

    def observe(self, pixels: Pixels, rng: np.random.Generator) -> Pixels:
        s = float(self.value)
        return {
            cam: cv2.GaussianBlur(img, (0, 0), sigmaX=s, sigmaY=s) for cam, img in pixels.items()
        }


class FrameDrop(Factor):
    """Each step, with probability ``value``, the cameras deliver no new frame and the
    policy sees the previous one again (all cameras together, as one dropped message)."""

    name = "frame_drop"
    group = "robot"
    description = "probability a step's frame repeats the last one"
    unit = "p"
    levels = {1: 0.2, 2: 0.5}  # noqa: RUF012

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self._last: Pixels | None = None

    def start(self, rng: np.random.Generator, hold_action: np.ndarray) -> None:
        self._last = None

    def observe(self, pixels: Pixels, rng: np.random.Generator) -> Pixels:
        if self._last is not None and rng.random() < float(self.value):
            return {cam: img.copy() for cam, img in self._last.items()}
        self._last = {cam: img.copy() for cam, img in pixels.items()}
        return pixels


class ActionLatency(Factor):
    """The robot executes each action ``value`` control steps late (50 ms per step at
    20 Hz); the first steps of an episode execute the hold action."""

    name = "action_latency"
    group = "robot"
    description = "actions executed k steps late"
    unit = "steps"
    levels = {1: 1, 2: 3}  # noqa: RUF012

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self._queue: deque[np.ndarray] = deque()

    def start(self, rng: np.random.Generator, hold_action: np.ndarray) -> None:
        self._queue = deque(np.array(hold_action, copy=True) for _ in range(int(self.value)))

    def act(self, action: np.ndarray) -> np.ndarray:
        self._queue.append(np.array(action, copy=True))
        return self._queue.popleft()
