"""The training configuration: one typed dataclass, loadable from YAML, every field
overridable from the command line, saved resolved in the run directory."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


@dataclass
class TrainConfig:
    # --- what to train -----------------------------------------------------------------
    policy: str = "vla-chunk"  # recipe name (``embodied-mm policies``)
    size: str = "tiny"  # recipe size: tiny | base
    # PolicyConfig fields to change, nested configs as dicts, e.g. {"chunk_size": 16,
    # "vision": {"image_size": 128}}; on the command line as JSON
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    dataset: list[str] = field(default_factory=list)  # one or more LeRobot dataset dirs
    out: str = "runs/train"  # run directory: config, checkpoints, logs, plots
    # align: the survey's PT (projectors only, on captions); ground: the image path and text
    # embeddings learn to predict where each episode ends (the goal head alone, needs
    # goal_loss_weight > 0); instruct: the survey's IT (actions, plans, and the goal loss)
    stage: Literal["align", "ground", "instruct"] = "instruct"
    init_from: str | None = None  # policy dir whose weights start this run (e.g. after align)
    # --- optimisation --------------------------------------------------------------------
    steps: int = 2000
    batch_size: int = 16
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    lora_r: int = 0  # 0 = full fine-tuning of the trainable parts
    freeze: list[str] = field(default_factory=list)  # subset of: vision, backbone, proprio
    # --- data ----------------------------------------------------------------------------
    # align stage: frame→caption pairs rendered from these envs instead of --dataset
    align_env: list[str] = field(
        default_factory=lambda: ["embodied_mm/PickLift-v0", "embodied_mm/StackCube-v0"]
    )
    align_samples: int = 2000
    n_obs_steps: int = 1
    num_workers: int = 0  # DataLoader workers
    # --- bookkeeping ---------------------------------------------------------------------
    seed: int = 0
    log_every: int = 10
    save_every: int = 500
    keep_last: int = 2  # checkpoints kept on disk
    eval_every: int = 0  # 0 = no evaluation during training
    eval_env: list[str] = field(default_factory=list)  # env ids for in-training evaluation
    eval_episodes: int = 10
    eval_engine: str = "mujoco"
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"  # auto = bf16 on CUDA only

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(dataclasses.asdict(self), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: Path) -> TrainConfig:
        return apply_overrides(cls(), read_yaml_values(path), source=str(path))


def read_yaml_values(path: Path) -> dict[str, Any]:
    """The field -> value mapping a YAML config file sets (only the fields it names)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of TrainConfig fields")
    return data


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(f"{name}: {value!r} is not a JSON object") from e
        if not isinstance(value, dict):
            raise ValueError(f"{name}: expected a mapping, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        return [_coerce(name, v, item) for v in value]
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ValueError(f"{name}: {value!r} is not one of {list(allowed)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value in (None, "none", "None") else _coerce(name, value, args[0])
    if hint is bool:
        if isinstance(value, str):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"{name}: {value!r} is not a boolean")
            return value.lower() in ("1", "true", "yes")
        return bool(value)
    try:
        return hint(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: cannot read {value!r} as {hint.__name__}") from e


def apply_overrides(cfg: TrainConfig, values: dict[str, Any], source: str = "") -> TrainConfig:
    """A copy of ``cfg`` with ``values`` (field name -> value, strings allowed) applied."""
    hints = _field_types()
    changes = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in hints:
            where = f" in {source}" if source else ""
            raise ValueError(
                f"unknown training option {key!r}{where}; known: {', '.join(sorted(hints))}"
            )
        changes[name] = _coerce(name, value, hints[name])
    return dataclasses.replace(cfg, **changes)


def parse_cli_overrides(args: list[str]) -> dict[str, str]:
    """``["--lr", "1e-4", "--keep-last=3"]`` -> ``{"lr": "1e-4", "keep_last": "3"}``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ValueError(f"unexpected argument {arg!r}; options look like --name value")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ValueError(f"option {arg} needs a value")
            value = args[i + 1]
            i += 1
        out[name.replace("-", "_")] = value
        i += 1
    return out


# Fields a resumed run may change: they set how long the run goes on and what it logs and
# keeps on disk, not what any step computes, so the resumed run still matches an
# uninterrupted one step for step. (A longer run stretches the cosine schedule from here on.)
RESUMABLE_FIELDS = ("steps", "log_every", "save_every", "keep_last")
_NOT_TRAINING = ("out", *RESUMABLE_FIELDS)


def config_digest(cfg: TrainConfig) -> str:
    """A stable fingerprint of the fields that change what is trained (for resume checks)."""
    keep = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_TRAINING}
    return json.dumps(keep, sort_keys=True)


def digest_differences(saved_digest: str, cfg: TrainConfig) -> list[str]:
    """The training fields on which ``cfg`` differs from a checkpoint's ``config_digest``.

    Fields in :data:`RESUMABLE_FIELDS` are ignored, also in digests of older checkpoints,
    which included them."""
    saved = json.loads(saved_digest)
    now = json.loads(config_digest(cfg))
    names = (set(saved) | set(now)) - set(_NOT_TRAINING)
    return sorted(n for n in names if saved.get(n) != now.get(n))


@dataclass
class ResumePlan:
    """What ``--resume`` does with the options given beside it."""

    config: TrainConfig  # the config the resumed run trains with
    applied: list[tuple[str, Any, Any]]  # (field, saved value, new value), from RESUMABLE_FIELDS
    kept: list[tuple[str, Any, Any]]  # (field, saved value, asked value): the saved one stays

    def describe(self) -> list[str]:
        """Lines for the user: what changed, what was kept and why."""
        lines = []
        if self.applied:
            changes = ", ".join(f"{n} {old} -> {new}" for n, old, new in self.applied)
            lines.append(f"resume: applied {changes}")
        if self.kept:
            kept = ", ".join(f"{n} {old!r} (asked {new!r})" for n, old, new in self.kept)
            lines.append(
                f"resume: kept the run's saved {kept}: a resumed run continues its saved "
                f"optimiser, schedule and data order exactly, so it trains with the settings it "
                f"started with; only {', '.join(RESUMABLE_FIELDS)} may change. To train with "
                f"new settings, start a new run dir (or pass --overwrite)"
            )
        return lines


def plan_resume(saved: TrainConfig, requested: TrainConfig, given: set[str] | None) -> ResumePlan:
    """The resumed run's config: ``saved`` with the resumable fields of ``requested`` applied.

    Args:
        saved: the run directory's ``config.yaml``.
        requested: the config built from this invocation's options.
        given: the fields this invocation set explicitly (``None``: compare every field).
    """
    names = set(_field_types()) if given is None else {n.replace("-", "_") for n in given}
    names.discard("out")
    # the run dir is where its config was found, whatever path it was first given as
    applied, kept, changes = [], [], {"out": requested.out}
    for name in sorted(names):
        old, new = getattr(saved, name), getattr(requested, name)
        if old == new:
            continue
        if name in RESUMABLE_FIELDS:
            applied.append((name, old, new))
            changes[name] = new
        else:
            kept.append((name, old, new))
    return ResumePlan(dataclasses.replace(saved, **changes), applied, kept)
