"""A policy on disk: ``save_pretrained`` / ``from_pretrained`` of
:class:`~embodied_mm.model.modeling_vla.VLAPolicy`, offline, with no pickle.

A checkpoint directory holds ``model.safetensors`` (weights), ``config.json`` (format, config
version, the weights' sha256, the :class:`~embodied_mm.model.configuration_vla.PolicyConfig`
and ``trained_with_plans``: whether training saw sub-task labels beside actions),
``stats.json`` (normalisation stats), ``processor.json`` (the processor pipeline, see
:mod:`embodied_mm.processor`; older checkpoints lack it) and ``tokenizer/``. A missing,
corrupt or truncated file fails with an error naming it; an older config version is migrated
so that the saved weights compute what they computed when they were saved.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from embodied_mm.errors import UsageError
from embodied_mm.features import ACTION, OBS_STATE
from embodied_mm.fsio import follow_umask, sha256_file
from embodied_mm.model.config_io import ConfigError, config_to_dict, decode_config
from embodied_mm.model.configuration_vla import PolicyConfig
from embodied_mm.model.normalize import load_stats

if TYPE_CHECKING:
    from embodied_mm.model.modeling_vla import VLAPolicy
    from embodied_mm.processor.core import Pipeline

CONFIG_FILE = "config.json"
# 2: the std floor of mean_std normalisation (std_floor_rel) is saved; version-1 checkpoints
# were trained without one.
CONFIG_VERSION = 2
WEIGHTS_FILE = "model.safetensors"
STATS_FILE = "stats.json"
TOKENIZER_DIR = "tokenizer"
FORMAT = "embodied-mm-policy"


def shipped_tokenizer_dir() -> Path:
    """The project's offline tokenizer (``sim_assets/tokenizer``), used by the tiny recipes."""
    return Path(str(resources.files("embodied_mm.sim_assets") / "tokenizer"))


def load_tokenizer(source: str | Path) -> Any:
    """A transformers tokenizer from a directory or hub name.

    Raises:
        UsageError: one line naming ``source`` and what is expected there.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(source))
    except Exception as err:  # transformers raises many types; all mean "unusable tokenizer"
        reason = first_line(err)
        if Path(source).exists():
            raise UsageError(
                f"cannot load tokenizer directory {source} ({reason}); expected what a "
                "tokenizer's save_pretrained writes: tokenizer.json and tokenizer_config.json"
            ) from err
        raise UsageError(
            f"tokenizer {source}: no such directory, and no tokenizer of that hub name is "
            f"available offline ({reason})"
        ) from err


def first_line(err: BaseException) -> str:
    """An exception's message cut to its first non-empty line (for one-line errors)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _migrate(meta: dict[str, Any]) -> dict[str, Any]:
    """A saved ``config.json`` brought to :data:`CONFIG_VERSION` without changing what the
    saved weights compute."""
    version = meta.get("version", 1)
    if not isinstance(version, int) or not 1 <= version <= CONFIG_VERSION:
        raise ValueError(f"version is {version!r}; this release reads 1..{CONFIG_VERSION}")
    if version < 2 and isinstance(meta.get("config"), dict):
        meta = {**meta, "config": {"std_floor_rel": 0.0, **meta["config"]}}
    return meta


def save_pretrained(policy: VLAPolicy, directory: str | Path) -> None:
    """Write ``model.safetensors``, ``config.json``, ``stats.json`` and ``tokenizer/``."""
    from safetensors.torch import save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    # save_model drops tied duplicates (e.g. a tied LM head) that save_file rejects.
    save_model(policy, str(weights))
    follow_umask(weights)  # safetensors creates it 0600 whatever the umask
    meta = {
        "format": FORMAT,
        "version": CONFIG_VERSION,
        "weights_sha256": sha256_file(weights),
        "config": config_to_dict(policy.config),
        # trained on sub-task labels: plans are asked for by default (runtime/inference.py)
        "trained_with_plans": bool(getattr(policy, "trained_with_plans", False)),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
    policy.normalizer.save(directory / STATS_FILE)
    policy.processor.pipeline.save(directory)  # processor.json: step names and parameters
    policy.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))


def from_pretrained(
    cls: type[VLAPolicy], directory: str | Path, device: str | torch.device | None = None
) -> VLAPolicy:
    """Rebuild a saved policy offline; a missing, corrupt or truncated file fails with an
    error naming it."""
    from safetensors.torch import load_model

    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(
            f"policy directory {directory} does not exist (a save_pretrained or export "
            "directory: config.json, model.safetensors, ...)"
        )
    config_path = directory / CONFIG_FILE
    try:
        meta = json.loads(config_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        meta = _migrate(meta)
    except (
        OSError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        KeyError,
        ValueError,
        TypeError,
    ) as err:
        raise UsageError(f"cannot read policy config {config_path}: {err}") from err
    # the one config decoder: a wrong field, type or value fails naming this file and the field
    config = decode_config(PolicyConfig, meta.get("config"), str(config_path), prefix=("config",))
    stats = load_stats(directory / STATS_FILE)
    check_stats_dims(config, stats, directory)
    tokenizer_dir = directory / TOKENIZER_DIR
    if not tokenizer_dir.is_dir():
        raise UsageError(
            f"tokenizer directory {tokenizer_dir} is missing: a checkpoint keeps the tokenizer "
            "it was trained with there (tokenizer.json, tokenizer_config.json)"
        )
    tokenizer = load_tokenizer(tokenizer_dir)
    try:
        policy = cls(
            config,
            stats=stats,
            tokenizer=tokenizer,
            device="cpu",
            processor=load_processor(directory, config, stats, tokenizer),
        )
    except ConfigError as err:  # a value only building checks (a VLM's architecture)
        raise err.located(str(config_path), ("config",)) from None
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise UsageError(f"policy weights {weights} are missing")
    if sha256_file(weights) != meta.get("weights_sha256"):
        raise UsageError(f"policy weights {weights} are corrupt or truncated (sha256 mismatch)")
    try:
        load_model(policy, str(weights), strict=True)
    except Exception as err:  # safetensors raises its own error type and RuntimeError
        # torch lists every mismatching tensor on its own line; the first says what is wrong
        detail = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        reason = detail[0] if detail else first_line(err)
        raise UsageError(
            f"cannot load policy weights {weights}: {reason} "
            f"(they do not match {directory / CONFIG_FILE})"
        ) from err
    policy.trained_with_plans = _trained_with_plans(meta, config_path)
    return policy.to(device or default_device())


def _trained_with_plans(meta: dict[str, Any], config_path: Path) -> bool:
    """``config.json``'s ``trained_with_plans`` (absent: False, a checkpoint saved before
    the marker existed)."""
    value = meta.get("trained_with_plans", False)
    if not isinstance(value, bool):
        raise UsageError(f"{config_path}: trained_with_plans must be true or false, got {value!r}")
    return value


def check_stats_dims(config: PolicyConfig, stats: dict[str, Any], directory: Path) -> None:
    """Every normalised feature's stats have as many values as the config's dims say.

    Raises:
        UsageError: naming both files, the feature and both numbers.
    """
    dims = {OBS_STATE: ("state_dim", config.state_dim), ACTION: ("action_dim", config.action_dim)}
    for feature, (field, want) in dims.items():
        if config.norm_modes.get(feature, "identity") == "identity" or feature not in stats:
            continue  # no stats needed (the normaliser names a missing feature)
        for name, values in stats[feature].items():
            if name != "count" and isinstance(values, list) and len(values) != want:
                raise UsageError(
                    f"{directory / STATS_FILE}: {feature}.{name} has {len(values)} values, but "
                    f"{directory / CONFIG_FILE} has config.{field} {want}: the two files must "
                    "come from one save_pretrained"
                )


def load_processor(
    directory: Path, config: PolicyConfig, stats: Any, tokenizer: Any
) -> Pipeline | None:
    """The checkpoint's saved pipeline (``processor.json``), or None for a checkpoint saved
    before processor files existed (the policy then builds the pipeline its config implies,
    which is what such checkpoints were trained with)."""
    from embodied_mm.processor.core import PROCESSOR_FILE, Pipeline, ProcessorError, Resources
    from embodied_mm.processor.policy_processor import mismatches

    if not (directory / PROCESSOR_FILE).is_file():
        return None
    pipeline = Pipeline.load(directory, Resources(stats, tokenizer.backend_tokenizer))
    wrong = mismatches(config, pipeline)
    if wrong:
        raise ProcessorError(
            f"{directory / PROCESSOR_FILE} disagrees with {directory / CONFIG_FILE}: "
            + "; ".join(wrong)
        )
    return pipeline


def default_device() -> torch.device:
    """Where a policy goes when no device is given: CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
