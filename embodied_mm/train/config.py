"""The training configuration: one typed dataclass that contains the policy's, loadable from
YAML, every field (nested ones too) a validated flag, saved resolved in the run directory.

Where values come from, later ones winning field by field: the recipe's preset policy
(``recipe`` + ``size``, :mod:`embodied_mm.policies.recipes`), then a YAML file (``--config``),
then flags (``--steps 2000 --policy.chunk_size 16 --policy.vision.film true``). All three
are merged into one dict and decoded once by :func:`embodied_mm.model.config_io.decode_config`
(draccus underneath, see there for why), so a wrong field fails with one line that names the
file or the flag. The run directory's ``config.yaml`` holds the resolved config, policy
included, and reloads through the same path.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from embodied_mm.model.config_io import (
    Checked,
    ConfigError,
    Rule,
    above,
    at_least,
    config_to_dict,
    decode_config,
    each,
    flag_parser,
    lookup,
    merge,
    one_of,
    parse_flags,
    read_mapping,
    registered,
)
from embodied_mm.model.configuration_vla import PolicyConfig

FREEZABLE = ("vision", "backbone", "proprio")
EVAL_ENGINES = ("mujoco", "pybullet")
SIZES = ("tiny", "base")  # as policies.recipes.SIZES (not imported: it loads the model code)


_COUNTS = (
    "steps",
    "batch_size",
    "grad_accum",
    "align_samples",
    "log_every",
    "save_every",
    "keep_last",
    "eval_episodes",
)  # fields that count something: ≥ 1


def _recipe_names() -> list[str]:
    from embodied_mm.policies.recipes import RECIPES

    return RECIPES.names()


@dataclass
class TrainConfig(Checked):
    # what to train
    recipe: str = "vla-chunk"  # preset policy (``embodied-mm policies``)
    size: str = "tiny"  # recipe size: tiny | base
    # The policy: the recipe's preset with any field changed (--policy.chunk_size 16,
    # --policy.vision.film true). None (in Python) = the preset as it is.
    policy: PolicyConfig | None = None
    dataset: list[str] = field(default_factory=list)  # one or more LeRobot dataset dirs
    out: str = "runs/train"  # run directory: config, checkpoints, logs, plots
    # align: the survey's PT (projectors only, on captions); ground: the image path and text
    # embeddings learn to predict where each episode ends (the goal head alone, needs
    # goal_loss_weight > 0); instruct: the survey's IT (actions, plans, and the goal loss)
    stage: Literal["align", "ground", "instruct"] = "instruct"
    init_from: str | None = None  # policy dir whose weights start this run (e.g. after align)
    # optimisation
    steps: int = 2000  # optimizer steps
    batch_size: int = 16  # samples per process and micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 3e-4  # peak learning rate (linear warmup, then cosine decay)
    weight_decay: float = 0.01  # AdamW
    warmup_steps: int = 100  # steps of linear warmup
    max_grad_norm: float = 1.0  # gradient clipping
    lora_r: int = 0  # 0 = full fine-tuning of the trainable parts
    freeze: list[str] = field(default_factory=list)  # subset of: vision, backbone, proprio
    # align stage: frame→caption pairs rendered from these envs instead of --dataset
    align_env: list[str] = field(
        default_factory=lambda: ["embodied_mm/PickLift-v0", "embodied_mm/StackCube-v0"]
    )
    align_samples: int = 2000  # align stage: caption pairs rendered
    # > 0: real-time chunking prefix conditioning (chunk head): each sample gets a random
    # delay d in 0..D and its first d ground-truth actions as input, so that --mode rtc can
    # continue a committed prefix; sets policy.head.rtc_max_delay
    rtc_max_delay: int = 0
    # DAgger-style data (deploy --teleop --record): frames a person drove (intervention=1)
    # are drawn this many times as often as the policy's frames (the sampler oversamples,
    # with replacement); 0 leaves them out, 1 = every frame alike (the plain shuffle)
    intervention_weight: float = 1.0
    intervention_only: bool = False  # train on the frames a person drove, and on no others
    # how often each --dataset is drawn (train/mixture.py): frames = every frame alike (a
    # dataset in proportion to its length); equal = each dataset equally often
    dataset_mix: Literal["frames", "equal"] = "frames"
    num_workers: int = 0  # DataLoader workers
    # bookkeeping
    seed: int = 0  # initial weights and data order
    log_every: int = 10  # steps between logged metrics
    save_every: int = 500  # steps between checkpoints
    keep_last: int = 2  # checkpoints kept on disk
    eval_every: int = 0  # 0 = no evaluation during training
    eval_env: list[str] = field(default_factory=list)  # env ids for in-training evaluation
    eval_episodes: int = 10  # episodes per env and evaluation
    eval_engine: str = "mujoco"  # mujoco | pybullet
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"  # auto = bf16 on CUDA only

    RULES: ClassVar[dict[str, Rule]] = {
        "recipe": registered(_recipe_names),
        "size": one_of(*SIZES),
        **dict.fromkeys(_COUNTS, at_least(1)),
        **dict.fromkeys(
            (
                "weight_decay",
                "warmup_steps",
                "lora_r",
                "num_workers",
                "eval_every",
                "rtc_max_delay",
                "intervention_weight",
            ),
            at_least(0),
        ),
        "lr": above(0),
        "max_grad_norm": above(0),
        "freeze": each(one_of(*FREEZABLE)),
        "eval_engine": one_of(*EVAL_ENGINES),
    }

    def __post_init__(self) -> None:
        if self.policy is None:  # the recipe's preset (the recipe and size checked first)
            for name in ("recipe", "size"):
                rule, value = self.RULES[name], getattr(self, name)
                if not (isinstance(value, str) and rule.test(value)):
                    raise ConfigError((name,), f"expected {rule.text()}, got {value!r}")
            from embodied_mm.policies.recipes import recipe_config

            self.policy = recipe_config(self.recipe, self.size)
        super().__post_init__()
        if self.rtc_max_delay > 0:
            if self.policy.head.kind != "chunk":
                raise ConfigError(
                    ("rtc_max_delay",),
                    f"prefix conditioning is for the chunk head (a flow head does real-time "
                    f"chunking untrained, by guidance); this policy's head is "
                    f"{self.policy.head.kind!r}",
                )
            if self.rtc_max_delay >= self.policy.chunk_size:
                raise ConfigError(
                    ("rtc_max_delay",),
                    f"expected fewer than the chunk's {self.policy.chunk_size} actions, got "
                    f"{self.rtc_max_delay}",
                )
            self.policy.head.rtc_max_delay = self.rtc_max_delay

    def save(self, path: Path) -> None:
        """The resolved config as YAML (what :meth:`from_yaml` and ``--config`` read)."""
        path.write_text(yaml.safe_dump(config_to_dict(self), sort_keys=False, allow_unicode=True))

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """A run directory's saved ``config.yaml`` (one written before the policy was part of
        TrainConfig is read in today's layout, see :func:`migrate_saved_run`)."""
        return load_train_config(path, saved_run=True)[0]


def load_train_config(
    config_file: str | Path | None = None,
    args: list[str] | tuple[str, ...] = (),
    saved_run: bool = False,
) -> tuple[TrainConfig, set[str]]:
    """The config from a YAML file with flags on top, and the dotted fields those two set.

    Precedence, field by field: flags > the file > the recipe's preset policy > defaults.
    ``saved_run``: the file is a run directory's own ``config.yaml``, which may predate the
    policy fields (:func:`migrate_saved_run`); a user's ``--config`` file gets the one-line
    old-style error instead.

    Raises:
        ConfigError: naming the file or the flag of the first wrong value.
    """
    flags = parse_flags(TrainConfig, _removed_flags_dropped(_old_style_checked(list(args))))
    flag_file = flags.pop("config_path", None)  # draccus's own spelling of --config
    config_file = config_file or flag_file
    source = str(config_file) if config_file else None
    file_values = read_mapping(config_file) if config_file else {}
    if saved_run:
        file_values = migrate_saved_run(file_values)
    file_values = _removed_fields_dropped(file_values, source)
    _reject_old_policy_values(file_values, source, flag=False)
    _reject_old_policy_values(flags, None, flag=True)
    layers = [(file_values, source, False), (flags, None, True)]
    try:
        recipe = flags.get("recipe", file_values.get("recipe", TrainConfig.recipe))
        size = flags.get("size", file_values.get("size", TrainConfig.size))
        preset = TrainConfig(recipe=recipe, size=size)
        merged = merge({"policy": config_to_dict(preset.policy)}, file_values, flags)
        cfg = decode_config(TrainConfig, merged)
    except ConfigError as err:  # say which layer the wrong value came from
        for values, where, flag in reversed(layers):
            if err.path and lookup(values, err.path)[0]:
                raise err.located(where, flag=flag) from None
        raise
    return cfg, set(_given(file_values, cfg)) | set(_given(flags, cfg))


def migrate_saved_run(values: dict[str, Any]) -> dict[str, Any]:
    """A saved ``config.yaml`` of an earlier release (``policy: NAME`` and ``policy_overrides:
    {FIELD: VALUE}``) in today's layout (``recipe: NAME``, ``policy: {FIELD: VALUE}``), so
    that its run can be resumed; today's layout passes unchanged."""
    if not isinstance(values.get("policy"), str):
        return values
    values = dict(values)
    values["recipe"] = values.pop("policy")
    values["policy"] = values.pop("policy_overrides", None) or {}
    return values


def train_flags_help() -> str:
    """Every TrainConfig field as a flag, with its type, default and comment (draccus)."""
    return flag_parser(TrainConfig).format_help()


def _given(values: dict[str, Any], cfg: Any, prefix: str = "") -> list[str]:
    """The dotted leaf fields of ``cfg`` that the nested dict ``values`` sets."""
    out = []
    for key, value in values.items():
        part = getattr(cfg, key, None)
        if isinstance(value, dict) and dataclasses.is_dataclass(part):
            out += _given(value, part, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


def _leaves(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted leaf field → plain value, nested configs flattened (``policy.chunk_size``)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_leaves(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


_OLD_STYLE = "--policy-overrides is gone: set each policy field as its own flag, e.g. "
_EXAMPLE = "--policy.chunk_size 16 --policy.vision.film true"


# Fields of earlier releases that this one dropped, with the one value that trains what it
# trained then. n_obs_steps decoded T observation frames per sample, of which the policy used
# only the last: training with observation history was never implemented, so the option went.
REMOVED_FIELDS = {"n_obs_steps": 1}
_REMOVED_WHY = {
    "n_obs_steps": "observation history is not supported (the policy reads the latest frame)"
}


def _removed_message(name: str, value: object) -> str:
    kept = REMOVED_FIELDS[name]
    return f"{_REMOVED_WHY[name]}: remove it or set {kept}, got {value!r}"


def _removed_fields_dropped(values: dict[str, Any], source: str | None) -> dict[str, Any]:
    """A file's values without the :data:`REMOVED_FIELDS` that hold their kept value (an older
    run's config.yaml says ``n_obs_steps: 1``); any other value is a one-line ConfigError."""
    for name, kept in REMOVED_FIELDS.items():
        if name in values:
            if values[name] != kept:
                raise ConfigError((name,), _removed_message(name, values[name]), source)
            values = {k: v for k, v in values.items() if k != name}
    return values


def _removed_flags_dropped(args: list[str]) -> list[str]:
    """The flags without ``--NAME VALUE`` (or ``--NAME=VALUE``) of a removed field that holds
    its kept value; any other value is a one-line ConfigError."""
    out, i = [], 0
    while i < len(args):
        name, eq, text = args[i].partition("=")
        field = name.removeprefix("--").replace("-", "_")
        if not name.startswith("--") or field not in REMOVED_FIELDS:
            out.append(args[i])
            i += 1
            continue
        if not eq:
            text = args[i + 1] if i + 1 < len(args) else ""
            i += 1
        i += 1
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if value != REMOVED_FIELDS[field]:
            raise ConfigError((field,), _removed_message(field, value), flag=True)
    return out


def _old_style_checked(args: list[str]) -> list[str]:
    """One line for the flags of earlier releases instead of an unknown-option error."""
    for arg in args:
        name = arg.partition("=")[0].replace("-", "_")
        if name == "__policy_overrides":
            raise ConfigError((), _OLD_STYLE + _EXAMPLE)
    return args


def _reject_old_policy_values(values: dict[str, Any], source: str | None, flag: bool) -> None:
    """One line for the layout of earlier releases (``policy: NAME``, ``policy_overrides``),
    saying what to write instead."""
    fields = _EXAMPLE if flag else "policy: {chunk_size: 16, vision: {film: true}}"
    if isinstance(values.get("policy"), str):
        name = values["policy"]
        if name not in _recipe_names():
            name = f"NAME (one of {', '.join(_recipe_names())})"
        say = f"--recipe {name}" if flag else f"recipe: {name}"
        raise ConfigError(("policy",), f"takes the policy's fields now; choose the recipe with "
                          f"{say}, then set fields as {fields}", source, flag)  # fmt: skip
    if "policy_overrides" in values:  # (the flag is caught before parsing)
        raise ConfigError((), f"policy_overrides is gone: set the policy's fields as {fields}",
                          source)  # fmt: skip


# Fields a resumed run may change: they set how long the run goes on and what it logs and
# keeps on disk, not what any step computes, so the resumed run still matches an
# uninterrupted one step for step. (A longer run stretches the cosine schedule from here on.)
RESUMABLE_FIELDS = ("steps", "log_every", "save_every", "keep_last")
_NOT_TRAINING = ("out", *RESUMABLE_FIELDS)


# Fields added after checkpoints were first written: an older digest without one trained with
# what is now its default.
_ADDED_FIELDS = {
    "intervention_weight": 1.0,
    "intervention_only": False,
    "dataset_mix": "frames",
    "rtc_max_delay": 0,
    "policy.head.rtc_max_delay": 0,
    "policy.head.rtc_max_guidance": 5.0,
}


def config_digest(cfg: TrainConfig) -> str:
    """A stable fingerprint of the fields that change what is trained (for resume checks)."""
    keep = {k: v for k, v in _leaves(cfg).items() if k not in _NOT_TRAINING}
    return json.dumps(keep, sort_keys=True)


def digest_differences(saved_digest: str, cfg: TrainConfig) -> list[str]:
    """The training fields on which ``cfg`` differs from a checkpoint's ``config_digest``.

    Fields in :data:`RESUMABLE_FIELDS` are ignored, also in digests of older checkpoints,
    which included them. A digest from before the policy was part of TrainConfig (recipe name
    and overrides) is compared as the policy they give."""
    saved = {**_ADDED_FIELDS, **_digest_in_todays_layout(json.loads(saved_digest))}
    for name, kept in REMOVED_FIELDS.items():  # a digest saved while the field existed
        if saved.get(name) == kept:
            del saved[name]
    now = json.loads(config_digest(cfg))
    names = (set(saved) | set(now)) - set(_NOT_TRAINING)
    return sorted(n for n in names if saved.get(n) != now.get(n))


def _digest_in_todays_layout(saved: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(saved.get("policy"), str):
        return saved
    from embodied_mm.policies.recipes import recipe_config

    saved = migrate_saved_run(saved)
    policy = saved.pop("policy")
    try:
        config = recipe_config(saved["recipe"], saved.get("size", SIZES[0]), **policy)
    except (ConfigError, KeyError):  # a recipe or field that no longer exists: all differ
        return {**saved, "policy": policy}
    return {**saved, **_leaves(config, "policy.")}


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
        given: the dotted fields this invocation set explicitly (``policy.chunk_size``;
            ``None``: compare every field).
    """
    known = _leaves(saved)
    names = set(known) if given is None else {n.replace("-", "_") for n in given}
    names = {n for n in names if n in known} - {"out"}
    # the run dir is where its config was found, whatever path it was first given as
    applied, kept, changes = [], [], {"out": requested.out}
    for name in sorted(names):
        old, new = _get(saved, name), _get(requested, name)
        if old == new:
            continue
        if name in RESUMABLE_FIELDS:
            applied.append((name, old, new))
            changes[name] = new
        else:
            kept.append((name, old, new))
    return ResumePlan(dataclasses.replace(saved, **changes), applied, kept)
