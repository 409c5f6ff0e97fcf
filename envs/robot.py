"""The arm's published numbers, shared by both engines, the env and the experts.

They restate what ``sim_assets/robots/panda.xml`` and ``panda.urdf`` encode (Franka Panda
kinematics), so Python code never parses an asset to learn a joint limit.
"""

from __future__ import annotations

import numpy as np

N_ARM_JOINTS = 7

# (7,) rad: the Franka "ready" pose; the TCP sits at about (0.307, 0, 0.487), pointing down.
HOME_Q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])

# (7, 2) rad: [lower, upper] per joint.
JOINT_LIMITS = np.array(
    [
        [-2.8973, 2.8973],
        [-1.7628, 1.7628],
        [-2.8973, 2.8973],
        [-3.0718, -0.0698],
        [-2.8973, 2.8973],
        [-0.0175, 3.7525],
        [-2.8973, 2.8973],
    ]
)

FINGER_TRAVEL = 0.04  # m per jaw
MAX_OPENING = 2 * FINGER_TRAVEL  # m between the pads, fully open

# The TCP pointing straight down with the jaws travelling along world y: (w, x, y, z).
# This is the TCP orientation at HOME_Q; tasks add a yaw about world z to it.
TCP_DOWN_QUAT = np.array([0.0, 1.0, 0.0, 0.0])

# The wrist camera, in the hand frame (z = approach axis, y = jaw travel): behind the jaws on
# the hand's +x side, tilted to look at a point just beyond the finger tips so that a grasped
# object sits in the middle of the image with one jaw on each side.
WRIST_CAMERA_EYE = np.array([0.06, 0.0, 0.065])
WRIST_CAMERA_LOOK_AT = np.array([0.0, 0.0, 0.17])
WRIST_CAMERA_UP = np.array([1.0, 0.0, 0.0])
