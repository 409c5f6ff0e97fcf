"""Processor pipelines: the named steps between a robot's observation and the model's tensors,
and between the model's output and the robot's action.

A pipeline is a list of small steps, each a ``batch dict -> batch dict`` function with a
registered name and JSON parameters. It is saved beside the weights as data
(``processor.json``: step names and their parameters; the normalisation stats stay in
``stats.json``) and rebuilt from that file through :data:`STEPS`, so a checkpoint carries its
own preprocessing and no code or pickle is loaded.

Each step has a *stage*:

- ``host``: Python work on numpy arrays or CPU tensors alike (input checks, tokenisation and
  its cache). The same step objects run before the PyTorch model and before onnxruntime.
- ``tensor``: torch tensor → tensor work (image layout/resize/pixel normalisation, feature
  normalisation and its inverse). PyTorch runs them on the policy's device; ONNX export
  traces the same step code into the graph, so the onnxruntime path has no second copy.

Input steps run in order from the robot's observation (LeRobot keys) to the model's inputs;
output steps from the model's normalised actions to robot units.
"""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

from embodied_mm.errors import UsageError
from embodied_mm.registry import Registry, UnknownNameError

PROCESSOR_FILE = "processor.json"
FORMAT = "embodied-mm-processor"
VERSION = 1
STAGES = ("host", "tensor")
SIDES = ("input", "output")


class ProcessorError(UsageError):
    """A processor file, step name or step parameter that cannot be used (a ValueError; the
    command line shows it as one line)."""


@dataclass
class Resources:
    """What steps need beyond their JSON parameters: the normalisation ``stats``
    (``stats.json``) and a ``tokenizers.Tokenizer`` (the checkpoint's ``tokenizer/``)."""

    stats: dict[str, dict[str, list[float]]] | None = None
    tokenizer: Any = None


class Step:
    """One named processing step. Subclasses set ``name``, ``stage``, ``side`` and ``Params``
    (a dataclass of JSON-typed fields) and implement ``__call__`` and ``from_params``."""

    name: ClassVar[str]
    stage: ClassVar[str]  # one of STAGES
    side: ClassVar[str]  # one of SIDES
    Params: ClassVar[type]

    params: Any  # an instance of Params

    @classmethod
    def from_params(cls, params: Any, resources: Resources) -> Step:
        raise NotImplementedError

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def reset(self) -> None:
        """Start a new episode (drop per-episode caches); most steps keep none."""

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "params": _params_to_json(self.params)}


# name -> "module:Class"; lazy, so the onnxruntime path never imports the torch steps.
STEPS: Registry[type[Step]] = Registry("processor step")
STEPS.register("observation_check", "embodied_mm.processor.observation:ObservationCheck")
STEPS.register("tokenize_task", "embodied_mm.processor.tokenize:TokenizeTask")
STEPS.register("vlm_prompt", "embodied_mm.processor.vlm_prompt:VLMPrompt")
STEPS.register("camera_pixels", "embodied_mm.processor.images:CameraPixels")
STEPS.register("normalize", "embodied_mm.processor.normalize:Normalize")
STEPS.register("unnormalize", "embodied_mm.processor.normalize:Unnormalize")


def _params_to_json(params: Any) -> dict[str, Any]:
    return {f.name: copy.deepcopy(getattr(params, f.name)) for f in fields(params)}


def _matches(value: Any, tp: Any) -> bool:
    """Whether a JSON value fits a (simple) type annotation."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_matches(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(tp)
        return isinstance(value, dict) and all(
            _matches(k, key) and _matches(v, item) for k, v in value.items()
        )
    return isinstance(value, tp)


def parse_params(step: type[Step], raw: Any, where: str) -> Any:
    """``raw`` (a JSON object) as ``step.Params``; an unknown, missing or mistyped parameter
    fails naming the step, the parameter and ``where`` (the file)."""
    params_cls = step.Params
    assert is_dataclass(params_cls)
    if not isinstance(raw, dict):
        raise ProcessorError(f"{where}: step {step.name!r}: params must be an object, got {raw!r}")
    hints = typing.get_type_hints(params_cls)
    known = {f.name for f in fields(params_cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ProcessorError(
            f"{where}: step {step.name!r}: unknown parameter(s) {unknown}; known: {sorted(known)}"
        )
    values = {}
    for f in fields(params_cls):
        if f.name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ProcessorError(f"{where}: step {step.name!r}: missing parameter {f.name!r}")
            continue
        if not _matches(raw[f.name], hints[f.name]):
            raise ProcessorError(
                f"{where}: step {step.name!r}: parameter {f.name!r} must be "
                f"{_type_name(hints[f.name])}; got {raw[f.name]!r}"
            )
        values[f.name] = raw[f.name]
    try:
        return params_cls(**values)
    except (TypeError, ValueError) as err:
        raise ProcessorError(f"{where}: step {step.name!r}: {err}") from err


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


class Pipeline:
    """An ordered list of steps (see the module docstring)."""

    def __init__(self, steps: Iterable[Step]) -> None:
        self.steps: list[Step] = list(steps)
        for s in self.steps:
            if s.stage not in STAGES or s.side not in SIDES:
                raise ProcessorError(f"step {s.name!r} has stage {s.stage!r}, side {s.side!r}")

    # ------------------------------------------------------------------ selection
    def select(self, side: str, stage: str | None = None) -> list[Step]:
        return [s for s in self.steps if s.side == side and (stage is None or s.stage == stage)]

    def find(self, name: str) -> Step | None:
        """The first step called ``name``, or None."""
        return next((s for s in self.steps if s.name == name), None)

    @staticmethod
    def run(steps: Iterable[Step], batch: dict[str, Any]) -> dict[str, Any]:
        """``batch`` through ``steps`` in order (the caller's dict is not modified)."""
        batch = dict(batch)
        for step in steps:
            batch = step(batch)
        return batch

    def reset(self) -> None:
        for s in self.steps:
            s.reset()

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "steps": [s.spec() for s in self.steps]}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / PROCESSOR_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def from_dict(
        cls,
        data: Any,
        resources: Resources,
        where: str = "processor",
        stages: tuple[str, ...] = STAGES,
    ) -> Pipeline:
        """Rebuild a pipeline; only steps of ``stages`` are built (the onnxruntime path builds
        the host steps; the tensor steps are inside its graph), the others only checked by
        name."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ProcessorError(f"{where}: not a processor file (format must be {FORMAT!r})")
        if data.get("version") != VERSION:
            raise ProcessorError(
                f"{where}: version is {data.get('version')!r}; this release reads {VERSION}"
            )
        specs = data.get("steps")
        if not isinstance(specs, list):
            raise ProcessorError(f"{where}: 'steps' must be a list of {{name, params}}")
        steps = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise ProcessorError(f"{where}: step {i} must be {{'name': str, 'params': {{}}}}")
            unknown = sorted(set(spec) - {"name", "params"})
            if unknown:
                raise ProcessorError(f"{where}: step {spec['name']!r}: unknown keys {unknown}")
            try:
                step_cls = STEPS.get(spec["name"])
            except UnknownNameError as err:
                raise ProcessorError(f"{where}: step {i}: {err}") from err
            params = parse_params(step_cls, spec.get("params", {}), where)
            if step_cls.stage not in stages:
                continue
            try:
                steps.append(step_cls.from_params(params, resources))
            except (KeyError, ValueError, TypeError) as err:
                raise ProcessorError(f"{where}: step {spec['name']!r}: {err}") from err
        return cls(steps)

    @classmethod
    def load(
        cls, directory: str | Path, resources: Resources, stages: tuple[str, ...] = STAGES
    ) -> Pipeline:
        """Read ``directory/processor.json``; any problem fails naming the file."""
        path = Path(directory) / PROCESSOR_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ProcessorError(f"cannot read processor file {path}: {err}") from err
        return cls.from_dict(data, resources, str(path), stages)


def has_processor(directory: str | Path) -> bool:
    return (Path(directory) / PROCESSOR_FILE).is_file()
