"""Teleoperation: a person drives the robot through a :class:`Teleoperator` (keyboard, gamepad,
leader arm), whose actions go through the same safety filter as a policy's."""
