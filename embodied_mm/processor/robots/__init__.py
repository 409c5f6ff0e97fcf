"""Per-robot state layouts: what each dim of ``observation.state`` is, by name.

Generic code (the sim adapter, the goal head, the policy's input check) asks a layout for
named dims instead of hard-coding indices; a new robot is a new file here registering its
:class:`RobotLayout` under the ``robot_type`` its datasets record (LeRobot's ``info.json``
field), not an edit of generic code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embodied_mm.registry import Registry


@dataclass(frozen=True)
class RobotLayout:
    """The named dims of a robot's ``observation.state`` (units in the names' docs).

    ``groups`` name sets of dims generic code asks for: ``joints`` (arm joints, rad),
    ``gripper`` (one dim), ``tcp_xyz`` (tool-centre position, m), ``goal`` (what the
    hindsight-goal head predicts: where the gripper went)."""

    robot_type: str
    state_names: tuple[str, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = {
            g: [n for n in names if n not in self.state_names] for g, names in self.groups.items()
        }
        unknown = {g: n for g, n in unknown.items() if n}
        if unknown:
            raise ValueError(f"{self.robot_type}: groups name unknown state dims {unknown}")

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    def dims(self, group: str) -> list[int]:
        """Indices of a group's dims in ``observation.state``, in the group's order."""
        if group not in self.groups:
            raise KeyError(
                f"robot {self.robot_type!r} has no state group {group!r}; "
                f"known: {sorted(self.groups)}"
            )
        return [self.state_names.index(n) for n in self.groups[group]]

    def slice(self, group: str) -> slice:
        """A contiguous group as a slice (e.g. ``tcp_xyz``)."""
        dims = self.dims(group)
        if dims != list(range(dims[0], dims[-1] + 1)):
            raise ValueError(f"{self.robot_type}: group {group!r} is not contiguous: {dims}")
        return slice(dims[0], dims[-1] + 1)


ROBOTS: Registry[RobotLayout] = Registry("robot layout")
ROBOTS.register("panda", "embodied_mm.processor.robots.panda:PANDA")


def robot_layout(robot_type: str) -> RobotLayout:
    return ROBOTS.get(robot_type)


def goal_dims_of(state_names: list[str] | None) -> list[int] | None:
    """The goal dims of the registered layout whose state names are ``state_names``, or None
    when no layout matches (then the goal head predicts every dim)."""
    if not state_names:
        return None
    for robot_type in ROBOTS.names():
        layout = ROBOTS.get(robot_type)
        if list(layout.state_names) == list(state_names) and "goal" in layout.groups:
            return layout.dims("goal")
    return None


def state_names_of(state_feature: dict | None, robot_type: str | None) -> list[str] | None:
    """The state layout of a dataset or robot: its ``observation.state`` feature's names, or,
    when it records none, the registered layout of its ``robot_type`` (if the sizes agree)."""
    feature = state_feature or {}
    names = feature.get("names")
    if isinstance(names, list) and all(isinstance(n, str) for n in names) and names:
        return list(names)
    if robot_type in ROBOTS:
        layout = ROBOTS.get(str(robot_type))
        shape = feature.get("shape")
        if shape is None or list(shape) == [layout.state_dim]:
            return list(layout.state_names)
    return None
