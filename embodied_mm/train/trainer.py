"""The training loop: one script from one CPU to multi-GPU/multi-node through Accelerate.

Accelerate places the model, wraps it in DDP under ``accelerate launch``, runs bf16
autocast on CUDA and accumulates gradients. Data order is ours
(:class:`~embodied_mm.train.sampler.ResumableShardSampler`), so a resumed run continues from
the exact ``(epoch, batch)`` position and, with the RNG states restored from the
checkpoint, reaches the same weights as an uninterrupted run (bitwise on the CPU).

Every rank draws from its own RNG stream (seed + rank: flow noise, flow times, dropout
masks and augmentation differ between ranks, as they would in one large batch), and a
checkpoint holds every rank's RNG state. Sharded training (FSDP, DeepSpeed) is refused: a
checkpoint is the main process's policy and optimiser, which under sharding hold one shard.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from embodied_mm.errors import UsageError
from embodied_mm.features import INTERVENTION, PLAN
from embodied_mm.train.checkpoint import (
    latest_checkpoint,
    load_training_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from embodied_mm.train.config import TrainConfig, config_digest, digest_differences
from embodied_mm.train.logger import TrainLogger
from embodied_mm.train.sampler import ResumableShardSampler


class NonFiniteLossError(RuntimeError):
    """Training stopped on a NaN/inf loss; a checkpoint of the last good state was written."""


# Accelerate's distributed types whose model or optimiser state is split across ranks.
SHARDED_TYPES = ("FSDP", "DEEPSPEED", "MEGATRON_LM")


def check_distributed_type(distributed_type: Any) -> None:
    """Refuse the distributed types whose checkpoints this trainer would write wrongly.

    Raises:
        ValueError: ``distributed_type`` shards parameters or optimiser state.
    """
    name = getattr(distributed_type, "name", str(distributed_type))
    if name in SHARDED_TYPES:
        raise ValueError(
            f"accelerate selected {name}, which this trainer does not support: its checkpoints "
            f"save the main process's policy and optimiser, which under {name} hold only that "
            f"rank's shard. Run one process or DDP (accelerate launch --multi_gpu); see "
            f"docs/training.md"
        )


class _LossModule(nn.Module):
    """Routes ``forward`` to ``policy.compute_loss`` so DDP's gradient hooks see the call."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.policy.compute_loss(batch)


@dataclass
class TrainResult:
    step: int
    final_loss: float
    checkpoint: Path | None
    num_processes: int = 1
    samples_per_s: float = 0.0  # all processes together, over this invocation's steps
    history: list[dict[str, float]] = field(default_factory=list)
    already_complete: bool = False  # --resume found the run finished; nothing was trained


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep strings (``task``, ``plan``) as lists.

    A batch drawn from several datasets may hold samples with keys that others lack (scripted
    demos beside ``record --policy`` or ``deploy --record`` data). A missing ``plan`` is ""
    (unlabelled) and a missing ``intervention`` flag is 0 (not a person's or the expert's
    correction). Any other key that only some samples have is left out of the batch: every
    input the policy reads is in every dataset (``check_features``), so such a key is unused."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for s in samples for k in s):
        values = [s.get(key) for s in samples]
        if any(v is None for v in values):
            present = next(v for v in values if v is not None)
            if key == PLAN:
                values = [v if v is not None else "" for v in values]
            elif key == INTERVENTION:
                values = [v if v is not None else torch.zeros_like(present) for v in values]
            else:
                continue
        out[key] = torch.stack(values) if torch.is_tensor(values[0]) else list(values)
    return out


def _mixed_precision(cfg: TrainConfig) -> str:
    if cfg.mixed_precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return cfg.mixed_precision


def make_accelerator(cfg: TrainConfig) -> Any:
    """The run's Accelerator (one process, or DDP under ``accelerate launch``)."""
    from accelerate import Accelerator, DistributedDataParallelKwargs

    accelerator = Accelerator(
        mixed_precision=_mixed_precision(cfg),
        gradient_accumulation_steps=cfg.grad_accum,
        cpu=not torch.cuda.is_available(),
        # Plan text is labelled in some batches only, so the LM head may sit out a step.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    check_distributed_type(accelerator.distributed_type)
    return accelerator


def train(
    cfg: TrainConfig,
    policy: nn.Module,
    dataset: Dataset,
    resume: bool = False,
    evaluate: Any = None,
    accelerator: Any = None,
    sample_weights: torch.Tensor | None = None,
) -> TrainResult:
    """Train ``policy`` on ``dataset`` for ``cfg.steps`` optimizer steps.

    ``sample_weights``: (len(dataset),) how often each sample is drawn (with replacement,
    :class:`ResumableShardSampler`); None shuffles every sample once an epoch.

    ``evaluate(policy, step) -> dict[str, float]``, when given, runs every ``cfg.eval_every``
    steps on the main process; its numbers are logged with the losses. ``accelerator``:
    from :func:`make_accelerator` (made here when not given).
    """
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    run_dir = Path(cfg.out)
    if accelerator is None:
        accelerator = make_accelerator(cfg)
    rank = accelerator.process_index
    # Each rank its own stream (nanoGPT's seed_offset): with one seed, every rank would draw
    # the same flow noise, flow times and dropout masks for its shard of the batch.
    set_seed(cfg.seed + rank)
    main = accelerator.is_main_process
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)

    sampler = ResumableShardSampler(
        len(dataset),
        cfg.batch_size,
        cfg.seed,
        accelerator.process_index,
        accelerator.num_processes,
        weights=sample_weights,
    )
    params = [p for p in policy.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter is frozen")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)

    step = 0
    if resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is not None:
            step = _restore(checkpoint, cfg, policy, optimizer, scheduler, accelerator)
            accelerator.print(f"resumed from {checkpoint} at step {step}")
    # Not handed to prepare(): accelerate would step it once per process.
    model, optimizer = accelerator.prepare(_LossModule(policy), optimizer)

    logger = TrainLogger(run_dir, total_steps=cfg.steps, start_step=step, enabled=main,
                         drop_after=step if resume else None)  # fmt: skip
    micro_per_epoch = sampler.batches_per_epoch
    consumed = step * cfg.grad_accum
    last_loss = math.nan
    last_ckpt: Path | None = None
    model.train()
    # Throughput is timed from the end of the first step (one-off warm-up excluded) to the
    # end of the last, before the final logging and plotting.
    first_step, t0, t_end, warm = step, time.perf_counter(), None, False
    try:
        while step < cfg.steps:
            epoch, start = divmod(consumed, micro_per_epoch)
            sampler.set_position(epoch, start)
            loader = DataLoader(
                dataset,
                batch_sampler=sampler,
                num_workers=cfg.num_workers,
                collate_fn=collate,
                # Own generator: otherwise each new loader draws its worker seed from the
                # global RNG, and a resumed run (one extra loader) would drift from the
                # uninterrupted one. Offset by rank like the global streams.
                generator=torch.Generator().manual_seed((cfg.seed + rank) * 100_003 + epoch),
            )
            for batch in loader:
                with accelerator.accumulate(model):
                    loss, metrics = model(_to_device(batch, accelerator.device))
                    # Every rank learns every rank's loss before the backward pass, so a
                    # non-finite loss anywhere stops all ranks at the same micro-batch (a rank
                    # stopping alone would leave the others waiting in the gradient
                    # all-reduce) and the checkpoint below is written by all of them together.
                    _check_finite(accelerator, loss, step + 1)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                consumed += 1
                if not accelerator.sync_gradients:
                    continue
                scheduler.step()
                step += 1
                if not warm:
                    first_step, t0, warm = step, time.perf_counter(), True
                last_loss = float(loss.detach())
                metrics["lr"] = scheduler.get_last_lr()[0]
                logger.log(step, metrics, every=cfg.log_every)
                if cfg.eval_every and evaluate is not None and step % cfg.eval_every == 0:
                    if main:
                        logger.log(step, evaluate(policy, step), every=1, prefix="eval/")
                    accelerator.wait_for_everyone()
                if step % cfg.save_every == 0 or step == cfg.steps:
                    last_ckpt = _save(accelerator, run_dir, cfg, step, consumed, policy,
                                      optimizer, scheduler)  # fmt: skip
                t_end = time.perf_counter()
                if step >= cfg.steps:
                    break
    except NonFiniteLossError as err:
        optimizer.zero_grad(set_to_none=True)
        path = _save(accelerator, run_dir, cfg, step, consumed, policy, optimizer, scheduler)
        logger.close()
        raise NonFiniteLossError(f"{err}; last good state saved in {path}") from err
    logger.close()
    seconds = (t_end or t0) - t0
    samples = (step - first_step) * cfg.batch_size * cfg.grad_accum * accelerator.num_processes
    return TrainResult(step, last_loss, last_ckpt, accelerator.num_processes,
                       samples / seconds if seconds > 0 else 0.0, logger.history)  # fmt: skip


def _check_finite(accelerator: Any, loss: torch.Tensor, step: int) -> None:
    losses = accelerator.gather(loss.detach().float().reshape(1)).tolist()  # (num_processes,)
    bad = [(r, v) for r, v in enumerate(losses) if not math.isfinite(v)]
    if not bad:
        return
    if accelerator.num_processes == 1:
        raise NonFiniteLossError(f"loss is {bad[0][1]} at step {step}; training stopped")
    where = ", ".join(f"{v} on rank {r}" for r, v in bad)
    raise NonFiniteLossError(f"loss is {where} at step {step}; all ranks stopped")


def _save(
    accelerator: Any,
    run_dir: Path,
    cfg: TrainConfig,
    step: int,
    consumed: int,
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> Path:
    from accelerate.utils import gather_object

    accelerator.wait_for_everyone()
    path = run_dir / "checkpoints" / f"step-{step:07d}"
    rng_per_rank = gather_object([rng_state()])  # every rank's, in rank order (collective)
    if accelerator.is_main_process:
        state = {
            "step": step,
            "consumed_micro_batches": consumed,
            "config_digest": config_digest(cfg),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_per_rank,
            "saved_at": time.time(),
        }
        path = save_checkpoint(run_dir, step, policy, state, cfg.keep_last)
    accelerator.wait_for_everyone()
    return path


def _restore(
    checkpoint: Path,
    cfg: TrainConfig,
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    accelerator: Any,
) -> int:
    from safetensors.torch import load_model

    from embodied_mm.model.pretrained import WEIGHTS_FILE

    state = load_training_state(checkpoint)
    differences = digest_differences(state["config_digest"], cfg)
    if differences:
        raise UsageError(
            f"{checkpoint} was written with a different training config "
            f"({', '.join(differences)}); resume with the run's saved config "
            f"({Path(cfg.out) / 'config.yaml'}) or start a new run dir"
        )
    weights = checkpoint / "policy" / WEIGHTS_FILE
    try:
        load_model(policy, str(weights), strict=True, device=str(next(policy.parameters()).device))
    except Exception as err:  # safetensors raises its own error types
        raise UsageError(f"cannot load checkpoint weights {weights}: {err}") from err
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _restore_rng(state["rng"], accelerator)
    return int(state["step"])


def _restore_rng(saved: dict[str, Any] | list[dict[str, Any]], accelerator: Any) -> None:
    """Give each rank back its own RNG stream from the checkpoint."""
    if isinstance(saved, dict):  # checkpoints before per-rank streams: one state for all
        set_rng_state(saved)
        return
    rank, world = accelerator.process_index, accelerator.num_processes
    if len(saved) != world:
        accelerator.print(
            f"warning: the checkpoint holds the RNG streams of {len(saved)} process(es) and "
            f"this run has {world}: the resumed run will not match an uninterrupted one"
        )
    if rank < len(saved):
        set_rng_state(saved[rank])
