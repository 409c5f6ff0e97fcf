"""The Franka Panda of our simulated tabletop tasks (MuJoCo and PyBullet), ``robot_type``
``"panda"`` in the datasets ``embodied-mm record`` writes.

``observation.state`` (15,): 7 joints (rad), the jaw opening (m), the TCP position (m) and
orientation quaternion (w, x, y, z).
"""

from embodied_mm.processor.robots import RobotLayout

JOINTS = tuple(f"joint_{i}" for i in range(7))
TCP_XYZ = ("tcp_x", "tcp_y", "tcp_z")

PANDA = RobotLayout(
    robot_type="panda",
    state_names=(*JOINTS, "jaw", *TCP_XYZ, "tcp_qw", "tcp_qx", "tcp_qy", "tcp_qz"),
    groups={
        "joints": JOINTS,
        "gripper": ("jaw",),
        "tcp_xyz": TCP_XYZ,
        # The goal head learns where the gripper went in the table plane: the location of
        # the object the instruction names.
        "goal": ("tcp_x", "tcp_y"),
    },
)
