"""Human interventions during deployment: a person takes over from the policy and hands back.

A :class:`Takeover` sits in the :class:`~embodied_mm.runtime.loop.ControllerLoop` beside the
policy's executor. Every step it reads the teleop device (and any terminal keys beside it),
and the take-over control (the ``t`` key, gamepad Y) toggles who drives:

- **the policy** (at the start of every episode): the executor's action goes to the filter,
  the device's motion is ignored;
- **the person**: the device's action replaces the executor's, and no inference runs. A
  released deadman (gamepad) sends the robot's hold command, so the robot stays where it is.

Whoever drives, the command goes through the same :class:`~embodied_mm.runtime.safety.
SafetyFilter` call (limits, rate limit, workspace, watchdog, e-stop): a person's command that
leaves the workspace is held and counted like a policy's. Handing back resets the executor,
so the policy's next action comes from a chunk inferred on the current observation; nothing
queued before the take-over is replayed. Taking over hands the device the robot's hold
command (:meth:`~embodied_mm.teleop.base.Teleoperator.take_over`), so a grasp the policy holds
is not dropped.

The other controls: **next** ends the episode, **stop** ends the run (both keep what was
recorded); **abort** (Ctrl-C on a keyboard in raw mode) engages the e-stop, as Ctrl-C does
without a device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from embodied_mm.runtime.safety import EStop
from embodied_mm.teleop.base import Teleoperator, TeleopEvent

EventSource = Callable[[], Iterable[TeleopEvent]]


@dataclass
class TakeoverRead:
    """One step's reading: who drives, and the person's command when it is the person."""

    person: bool  # the person drives this step
    action: np.ndarray | None = None  # (D,) the person's command; None: no reading (watchdog)
    handed_back: bool = False  # the person handed back to the policy this step
    events: set[TeleopEvent] = field(default_factory=set)


class Takeover:
    """Who drives the robot, the policy or the person on ``teleop`` (see the module docstring).

    ``teleop`` is connected and attached to the robot by the caller. ``controls``: more event
    sources (terminal keys beside a leader arm or a gamepad). ``estop``: engaged on abort.
    """

    def __init__(
        self,
        teleop: Teleoperator,
        controls: Iterable[EventSource] = (),
        estop: EStop | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.teleop = teleop
        self.controls = list(controls)
        self.estop = estop
        self.on_event = on_event
        self.person = False
        self.end: str | None = None  # "next" | "stop": the person asked to end
        self.person_steps = 0  # steps the person drove this episode
        self.takeovers = 0  # take-overs this episode
        self._step = 0

    def reset(self) -> None:
        """Start of an episode: the policy drives."""
        self.person = False
        self.end = None
        self.person_steps = 0
        self.takeovers = 0
        self._step = 0
        self.teleop.reset()

    def read(self, hold: np.ndarray) -> TakeoverRead:
        """Read the device once; ``hold`` (D,) is the robot's hold command now."""
        command = self.teleop.get_action()
        events = set(command.events)
        for source in self.controls:
            events.update(source())
        handed_back = taken = False
        if TeleopEvent.TAKEOVER in events:
            self.person = not self.person
            if self.person:
                taken = True
                self.takeovers += 1
                self.teleop.take_over(hold)
                self._say(f"person takes over at step {self._step} ({self.teleop.name})")
            else:
                handed_back = True
                self._say(f"policy resumes at step {self._step}")
        if TeleopEvent.ABORT in events and self.estop is not None:
            self.estop.trigger(f"abort on {self.teleop.name}")
        if TeleopEvent.STOP in events:
            self.end = "stop"
        elif TeleopEvent.NEXT in events and self.end is None:
            self.end = "next"
        self._step += 1
        if not self.person:
            return TakeoverRead(False, None, handed_back, events)
        self.person_steps += 1
        # The take-over step holds: the device's reading predates take_over.
        engaged = command.engaged and not taken
        action = command.action if engaged else np.asarray(hold, dtype=np.float64)
        return TakeoverRead(True, action, False, events)

    def _say(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)
