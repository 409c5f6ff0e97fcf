"""``embodied-mm train`` end to end: datasets + recipe → checked features → trained run dir."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset, Dataset

from embodied_mm.errors import UsageError
from embodied_mm.features import ACTION, OBS_STATE, PLAN, image_key
from embodied_mm.model.config_io import ConfigError
from embodied_mm.train.checkpoint import latest_checkpoint, load_training_state
from embodied_mm.train.config import FREEZABLE, TrainConfig, plan_resume
from embodied_mm.train.rundir import CONFIG_NAME, last_logged_loss, own_run_dir
from embodied_mm.train.trainer import TrainResult, train


class FeatureMismatchError(UsageError):
    """The dataset's features do not fit the recipe; raised before any training step."""


def check_features(policy_config: Any, features: dict[str, dict[str, Any]], where: str) -> None:
    """Compare what the recipe expects with what a dataset holds; list both on mismatch."""
    expected: dict[str, tuple[int, ...]] = {
        OBS_STATE: (policy_config.state_dim,),
        ACTION: (policy_config.action_dim,),
    }
    for cam in policy_config.cameras:
        expected[image_key(cam)] = ()  # any resolution: the towers resize
    problems = []
    for key, shape in expected.items():
        if key not in features:
            problems.append(f"missing {key}")
        elif shape and tuple(features[key]["shape"]) != shape:
            problems.append(f"{key} has shape {tuple(features[key]['shape'])}, expected {shape}")
    if problems:
        want = ", ".join(f"{k}{list(s) if s else ''}" for k, s in expected.items())
        found = ", ".join(f"{k}{list(f.get('shape', []))}" for k, f in sorted(features.items()))
        raise FeatureMismatchError(  # one line: the CLI prints it as the error
            f"{where} does not fit the recipe: {'; '.join(problems)} (expected: {want}; "
            f"found: {found})"
        )


def policy_stats(datasets: list[Any]) -> dict[str, dict[str, list[float]]]:
    """State/action stats for the policy's normaliser, computed exactly over every frame of
    every dataset.

    ``meta/stats.json`` quantiles are count-weighted means of per-episode quantiles (LeRobot's
    aggregation). For actions that differ between episodes (move left in one, right in the
    next) that average is far narrower than the real 1st/99th percentiles, and q01/q99
    normalisation would clip most of the motion away, so the vectors are re-read here.
    """
    from embodied_mm.data.stats import vector_stats

    out = {}
    for key in (OBS_STATE, ACTION):
        values = np.concatenate([np.asarray(d.frames.columns[key]) for d in datasets])  # (N, D)
        stats = vector_stats(values.reshape(len(values), -1))
        out[key] = {
            name: np.asarray(v, np.float64).reshape(-1).tolist() for name, v in stats.items()
        }
    return out


def state_names(datasets: list[Any]) -> list[str] | None:
    """The state layout the datasets share (their ``observation.state`` names, or the layout
    of their ``robot_type``; embodied_mm/processor/robots), or None when unknown or mixed."""
    from embodied_mm.features import OBS_STATE
    from embodied_mm.processor.robots import state_names_of

    found = [state_names_of(d.meta.features.get(OBS_STATE), d.meta.info.get("robot_type"))
             for d in datasets]  # fmt: skip
    return found[0] if found and all(f == found[0] for f in found) else None


def build_policy(cfg: TrainConfig, stats: dict[str, Any] | None, names: list[str] | None = None):
    """The run's policy (``cfg.policy``) with its freeze/LoRA choices (align stage: projectors
    only); ``names``: the state layout of the training data, saved in its processor file."""
    from embodied_mm.model.modeling_vla import VLAPolicy

    freeze = set(cfg.freeze) | (set(FREEZABLE) if cfg.stage == "align" else set())
    # a copy: building fills hf_config & co, and the run's choices below must not reach the
    # saved config either
    policy_config = copy.deepcopy(cfg.policy)
    vlm = policy_config.vlm  # a VLM: its own encoder, projector and LM (model/vlm.py)
    if "vision" in freeze:
        policy_config.vision.freeze = True
        if vlm is not None:
            vlm.freeze_vision = True
    if "backbone" in freeze:
        policy_config.backbone.freeze = True
    if cfg.lora_r and cfg.stage != "align":
        policy_config.backbone.lora_rank = cfg.lora_r
        if vlm is not None:
            vlm.lora_rank = cfg.lora_r
    policy = VLAPolicy(policy_config, stats, state_names=names)
    if vlm is not None and "backbone" in freeze:
        for name, p in policy.backbone.decoder.named_parameters():
            p.requires_grad_("lora_" in name)
    if "proprio" in freeze:
        policy.proprio.requires_grad_(False)
    if cfg.stage == "align":
        # the survey's MM pre-training: only the input projectors learn
        policy.requires_grad_(False)
        projector = policy.projector
        if projector is None:  # a VLM's own projector / connector
            projector = policy.backbone.vision_projector(policy.backbone.lm)
        projector.requires_grad_(True)
    if cfg.stage == "ground":
        if policy.goal_head is None:
            raise UsageError(
                "the ground stage trains the goal head: set --policy.goal_loss_weight > 0 "
                "(and --policy.goal_dims, e.g. 8,9, where the dataset's robot layout names no "
                "goal dims)"
            )
        policy.requires_grad_(False)
        vision = policy.vision
        if vision is None:  # a VLM's own vision encoder
            vision = policy.backbone.vision_encoder(policy.backbone.lm)
        parts = [vision, policy.goal_head, policy.backbone.lm.get_input_embeddings()]
        if policy.film_text is not None:  # what FiLM reads of the instruction
            parts.append(policy.film_text)
        for part in parts:
            part.requires_grad_(True)
    return policy


def load_datasets(cfg: TrainConfig, policy_config: Any) -> tuple[Dataset, list[Any]]:
    from embodied_mm.data.reader import DatasetMeta
    from embodied_mm.data.torch_dataset import build_window_dataset

    if not cfg.dataset:
        raise UsageError("no dataset given: pass --dataset DIR (one or more, comma-separated)")
    parts = []
    for root in cfg.dataset:
        meta = DatasetMeta(Path(root))
        check_features(policy_config, meta.features, f"dataset {root}")
        parts.append(
            build_window_dataset(
                root,
                chunk_size=policy_config.chunk_size,
                final_state=policy_config.goal_loss_weight > 0,
                # frames as a camera gives them: the policy's processor pipeline converts and
                # resizes them as at run time (and batches are 4x smaller than float frames)
                image_format="uint8",
            )
        )
    dataset: Dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    return dataset, parts


class GoalOnly(Dataset):
    """The ground stage's samples: each episode's first frame (the arm at its start pose, the
    scene unoccluded), without actions and plans, so batches train the goal head alone (see
    ``VLAPolicy.compute_loss``). On every frame the held-out goal error was still 9.7 cm
    after 2000 steps; on first frames it was 2.8 cm after 500."""

    DROPPED = (ACTION, f"{ACTION}_is_pad", PLAN)

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts
        self.rows = [
            (p, int(r))
            for p, part in enumerate(parts)
            for r in np.nonzero(np.asarray(part.frames.columns["frame_index"]) == 0)[0]
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def part_lengths(self) -> list[int]:
        """The first frames of each part, in the order of ``rows``."""
        counts = np.bincount([p for p, _ in self.rows], minlength=len(self.parts))
        return [int(n) for n in counts]

    def __getitem__(self, i: int) -> dict[str, Any]:
        p, row = self.rows[i]
        item = self.parts[p][row]
        return {k: v for k, v in item.items() if k not in self.DROPPED}


# parameter names a run may add to the weights it starts from (see load_weights)
ADDED_PARAMETERS = ("lora_", "head.committed_in.", "goal_in.")


def load_weights(policy: Any, policy_dir: Path) -> None:
    """Start from another run's weights (e.g. the align stage's projectors). Parameters the
    source lacks that a run adds on purpose (LoRA adapters; the chunk head's committed-prefix
    input of ``--rtc-max-delay``; the waypoint token of ``goal_input``) keep their fresh
    values; anything else that does not match is an error."""
    from safetensors.torch import load_model

    from embodied_mm.model.pretrained import WEIGHTS_FILE

    path = policy_dir / WEIGHTS_FILE
    try:
        # load_model (not load_state_dict) restores tied weights that the file stores once
        missing, unexpected = load_model(policy, str(path), strict=False)
    except Exception as err:  # safetensors raises several error types
        raise UsageError(f"cannot read --init-from weights {path}: {err}") from err
    bad_missing = [k for k in missing if not any(a in k for a in ADDED_PARAMETERS)]
    if unexpected or bad_missing:
        raise UsageError(
            f"{path} does not fit the {type(policy).__name__}: missing {bad_missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )


def make_evaluator(cfg: TrainConfig):
    """In-training evaluation: vectorised rollouts on held-out seeds, one video per task."""
    if not (cfg.eval_every and cfg.eval_env):
        return None
    from embodied_mm.eval.evaluate import evaluate_policy

    def evaluate(policy: Any, step: int) -> dict[str, float]:
        policy.eval()
        try:
            video_dir = Path(cfg.out) / "eval" / f"step-{step:07d}"
            results = evaluate_policy(policy, cfg.eval_env, cfg.eval_engine, cfg.eval_episodes,
                                      video_dir=video_dir)  # fmt: skip
        finally:
            policy.train()
        return {
            f"success/{env_id}": float(np.mean([r["success"] for r in records]))
            for env_id, records in results.items()
        }

    return evaluate


def run_training(
    cfg: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    given: set[str] | None = None,
) -> TrainResult:
    """Own the run dir, check everything that can be checked, save the resolved config, then
    train.

    Args:
        cfg: the requested config.
        resume: continue the run in ``cfg.out`` from its last checkpoint, with its saved
            config (see :func:`~embodied_mm.train.config.plan_resume` for what may change).
        overwrite: move an existing run in ``cfg.out`` aside and start afresh.
        given: the fields the user set explicitly (``None``: every field counts as set).

    Raises:
        DirectoryLockedError: another process is training in ``cfg.out``.
        RunDirError: ``cfg.out`` holds a run and neither ``resume`` nor ``overwrite`` is set.
    """
    from embodied_mm.train.trainer import make_accelerator

    _check_init_from(cfg)
    _check_align(cfg)
    run_dir = Path(cfg.out)
    saved = run_dir / CONFIG_NAME
    notes: list[str] = []
    if resume and saved.is_file():
        plan = plan_resume(TrainConfig.from_yaml(saved), cfg, given)
        cfg, notes = plan.config, plan.describe()
    accelerator = make_accelerator(cfg)
    with own_run_dir(accelerator, run_dir, resume, overwrite) as moved:
        if moved is not None:
            accelerator.print(f"--overwrite: moved the old run in {run_dir} to {moved}")
        for line in notes:
            accelerator.print(line)
        if resume:
            done = _completed(cfg)
            if done is not None:
                return done
        return _train_in(cfg, resume, accelerator)


def _check_init_from(cfg: TrainConfig) -> None:
    """A missing ``--init-from`` policy fails before the run dir is touched."""
    from embodied_mm.model.pretrained import WEIGHTS_FILE

    if cfg.init_from and not (Path(cfg.init_from) / WEIGHTS_FILE).is_file():
        raise ConfigError(
            ("init_from",),
            f"expected a policy directory holding {WEIGHTS_FILE} (a run's "
            f"checkpoints/step-N/policy), got {cfg.init_from!r}",
            flag=True,
        )


def _check_align(cfg: TrainConfig) -> None:
    """The align stage trains a projector from scratch; a pretrained VLM's is trained already."""
    vlm = cfg.policy.vlm
    if cfg.stage == "align" and vlm is not None and vlm.pretrained is not None:
        raise UsageError(
            f"--stage align is not needed: {vlm.pretrained} is a pretrained VLM whose vision "
            "encoder, projector and LM are already aligned; skip it and train --stage instruct"
        )


def _completed(cfg: TrainConfig) -> TrainResult | None:
    """The result of a finished run (its last checkpoint reached ``cfg.steps``), else None."""
    checkpoint = latest_checkpoint(Path(cfg.out))
    if checkpoint is None:
        return None
    step = int(load_training_state(checkpoint)["step"])
    if step < cfg.steps:
        return None
    loss = last_logged_loss(Path(cfg.out))
    return TrainResult(step, loss, checkpoint, already_complete=True)


def _train_in(cfg: TrainConfig, resume: bool, accelerator: Any) -> TrainResult:
    from accelerate.utils import set_seed

    from embodied_mm.train.intervention import intervention_sample_weights
    from embodied_mm.train.mixture import combined_weights, dataset_mix_weights

    run_dir = Path(cfg.out)
    policy_config = cfg.policy
    weighted = cfg.intervention_weight != 1 or cfg.intervention_only
    if weighted and cfg.stage != "instruct":
        raise UsageError(
            f"--intervention-weight/--intervention-only apply to --stage instruct, not {cfg.stage}"
        )
    if cfg.dataset_mix != "frames" and cfg.stage == "align":
        raise UsageError("--dataset-mix applies to --stage ground and instruct (align renders "
                         "captions, it reads no --dataset)")  # fmt: skip
    sample_weights = None
    if cfg.stage == "align":
        from embodied_mm.train.captions import CaptionDataset

        dataset: Dataset = CaptionDataset(cfg.align_env, cfg.align_samples, cfg.seed,
                                          image_size=policy_config.image_size)  # fmt: skip
        stats = None  # captions carry no actions; instruction tuning brings the stats
        names = None
    else:
        dataset, parts = load_datasets(cfg, policy_config)
        stats = policy_stats(parts)
        names = state_names(parts)
        lengths = [len(part) for part in parts]
        if cfg.stage == "ground":
            dataset = GoalOnly(parts)
            lengths = dataset.part_lengths()
        sample_weights = combined_weights(
            intervention_sample_weights(
                parts, cfg.intervention_weight, cfg.intervention_only, list(cfg.dataset)
            ),
            dataset_mix_weights(lengths, cfg.dataset_mix),
        )
    set_seed(cfg.seed)  # the initial weights are part of what a seed reproduces (every rank)
    policy = build_policy(cfg, stats, names)
    if cfg.init_from:
        load_weights(policy, Path(cfg.init_from))
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(run_dir / CONFIG_NAME)
    return train(cfg, policy, dataset, resume=resume, evaluate=make_evaluator(cfg),
                 accelerator=accelerator, sample_weights=sample_weights)  # fmt: skip
