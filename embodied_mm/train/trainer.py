"""The training loop: one script from one CPU to multi-GPU/multi-node through Accelerate.

Accelerate places the model, wraps it in DDP/FSDP under ``accelerate launch``, runs bf16
autocast on CUDA and accumulates gradients. Data order is ours
(:class:`~embodied_mm.train.sampler.ResumableShardSampler`), so a resumed run continues from
the exact ``(epoch, batch)`` position and, with the RNG states restored from the
checkpoint, reaches the same weights as an uninterrupted run (bitwise on the CPU).
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

from embodied_mm.train.checkpoint import (
    latest_checkpoint,
    load_training_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from embodied_mm.train.config import TrainConfig, config_digest
from embodied_mm.train.logger import TrainLogger
from embodied_mm.train.sampler import ResumableShardSampler


class NonFiniteLossError(RuntimeError):
    """Training stopped on a NaN/inf loss; a checkpoint of the last good state was written."""


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


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep strings (``task``, ``plan``) as lists."""
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = torch.stack(values) if torch.is_tensor(values[0]) else list(values)
    return out


def _mixed_precision(cfg: TrainConfig) -> str:
    if cfg.mixed_precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return cfg.mixed_precision


def train(
    cfg: TrainConfig,
    policy: nn.Module,
    dataset: Dataset,
    resume: bool = False,
    evaluate: Any = None,
) -> TrainResult:
    """Train ``policy`` on ``dataset`` for ``cfg.steps`` optimizer steps.

    ``evaluate(policy, step) -> dict[str, float]``, when given, runs every ``cfg.eval_every``
    steps on the main process; its numbers are logged with the losses.
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    run_dir = Path(cfg.out)
    accelerator = Accelerator(
        mixed_precision=_mixed_precision(cfg),
        gradient_accumulation_steps=cfg.grad_accum,
        cpu=not torch.cuda.is_available(),
        # Plan text is labelled in some batches only, so the LM head may sit out a step.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    set_seed(cfg.seed)
    main = accelerator.is_main_process
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)

    sampler = ResumableShardSampler(
        len(dataset),
        cfg.batch_size,
        cfg.seed,
        accelerator.process_index,
        accelerator.num_processes,
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
            step = _restore(checkpoint, cfg, policy, optimizer, scheduler)
            accelerator.print(f"resumed from {checkpoint} at step {step}")
    # Not handed to prepare(): accelerate would step it once per process.
    model, optimizer = accelerator.prepare(_LossModule(policy), optimizer)

    logger = TrainLogger(run_dir, total_steps=cfg.steps, start_step=step, enabled=main)
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
                # uninterrupted one.
                generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch),
            )
            for batch in loader:
                with accelerator.accumulate(model):
                    loss, metrics = model(_to_device(batch, accelerator.device))
                    if not torch.isfinite(loss):
                        raise NonFiniteLossError(
                            f"loss is {loss.item()} at step {step + 1}; training stopped"
                        )
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
    accelerator.wait_for_everyone()
    path = run_dir / "checkpoints" / f"step-{step:07d}"
    if accelerator.is_main_process:
        state = {
            "step": step,
            "consumed_micro_batches": consumed,
            "config_digest": config_digest(cfg),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
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
) -> int:
    from safetensors.torch import load_model

    from embodied_mm.model.policy import WEIGHTS_FILE

    state = load_training_state(checkpoint)
    if state["config_digest"] != config_digest(cfg):
        raise ValueError(
            f"{checkpoint} was written with a different training config; resume with the "
            f"run's saved config ({Path(cfg.out) / 'config.yaml'}) or start a new run dir"
        )
    weights = checkpoint / "policy" / WEIGHTS_FILE
    try:
        load_model(policy, str(weights), strict=True, device=str(next(policy.parameters()).device))
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"cannot load checkpoint weights {weights}: {err}") from err
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])
