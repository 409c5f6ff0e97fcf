"""A policy on disk: ``save_pretrained`` / ``from_pretrained`` of
:class:`~embodied_mm.model.modeling_vla.VLAPolicy`, offline, with no pickle.

A checkpoint directory holds ``model.safetensors`` (weights), ``config.json`` (format, config
version, the weights' sha256 and the :class:`~embodied_mm.model.configuration_vla.PolicyConfig`),
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
from embodied_mm.fsio import follow_umask, sha256_file
from embodied_mm.model.config_io import config_to_dict, decode_config
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
    """A transformers tokenizer from a directory or hub name; any failure names ``source``."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(source))
    except Exception as err:  # transformers raises many types; all mean "unusable tokenizer"
        raise ValueError(f"cannot load tokenizer from {source}: {err}") from err


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
    tokenizer = load_tokenizer(directory / TOKENIZER_DIR)
    policy = cls(
        config,
        stats=stats,
        tokenizer=tokenizer,
        device="cpu",
        processor=load_processor(directory, config, stats, tokenizer),
    )
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ValueError(f"policy weights {weights} are missing")
    if sha256_file(weights) != meta.get("weights_sha256"):
        raise ValueError(f"policy weights {weights} are corrupt or truncated (sha256 mismatch)")
    try:
        load_model(policy, str(weights), strict=True)
    except Exception as err:  # safetensors raises its own error type and RuntimeError
        raise ValueError(f"cannot load policy weights {weights}: {err}") from err
    return policy.to(device or default_device())


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
