"""Where action chunks come from: a policy in this process, or a policy server.

Both implement :class:`ChunkSource`: one unbatched observation frame (LeRobot keys, see
``embodied_mm.features``) in, one :class:`ChunkResult` out. The controller loop and the chunk
executors only see this interface, so ``deploy --checkpoint`` and ``deploy --server`` run the
same loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from embodied_mm.features import OBS_STATE, TASK, image_key


def load_policy(path: str | Path, device: str | None = None) -> Any:
    """A saved policy in eval mode: a ``save_pretrained`` directory (PyTorch), or an
    ``embodied-mm export`` directory (``manifest.json``; onnxruntime). Both have the same API."""
    from embodied_mm.export.manifest import MANIFEST_FILE

    if (Path(path) / MANIFEST_FILE).is_file():
        from embodied_mm.export.ort_policy import OrtPolicy

        return OrtPolicy(path)
    from embodied_mm.model.modeling_vla import VLAPolicy

    return VLAPolicy.from_pretrained(path, device=device).eval()


def _state_names(policy: Any) -> list[str] | None:
    """``state_names`` of a policy's saved processor pipeline (PyTorch or onnxruntime)."""
    processor = getattr(policy, "processor", None)
    pipeline = getattr(processor, "pipeline", processor)
    find = getattr(pipeline, "find", None)
    step = find("observation_check") if find is not None else None
    names = getattr(getattr(step, "params", None), "state_names", None)
    return list(names) if names else None


# Optional request keys of real-time chunking (``--mode rtc``, :mod:`embodied_mm.runtime.rtc`):
# the actions already committed for the chunk's first steps, (L, D) float32 robot units, and
# how many of them execute while it is computed (an int <= L). The chunk continues them.
RTC_PREFIX = "rtc.prefix"
RTC_DELAY = "rtc.delay"


def rtc_request(frames: list[dict[str, Any]], action_dim: int) -> dict[str, np.ndarray] | None:
    """The committed prefixes of a batch of request frames as ``predict_chunk``'s keyword
    arguments: ``prefix`` (B, L, D) zero-padded to the longest, ``delay`` (B,) and
    ``overlap`` (B,) (the real rows); frames without one get delay 0 and overlap 0. None
    when no frame carries a prefix."""
    if not any(RTC_PREFIX in f for f in frames):
        return None
    rows = [np.asarray(f.get(RTC_PREFIX, np.zeros((0, action_dim))), np.float32) for f in frames]
    for r in rows:
        if r.ndim != 2 or r.shape[1] != action_dim:
            raise ValueError(f"{RTC_PREFIX} must be (L, {action_dim}); got {r.shape}")
    width = max(len(r) for r in rows)
    prefix = np.zeros((len(frames), width, action_dim), np.float32)
    for i, r in enumerate(rows):
        prefix[i, : len(r)] = r
    delay = np.array([int(f.get(RTC_DELAY, 0)) for f in frames], np.int64)
    overlap = np.array([len(r) for r in rows], np.int64)
    return {"prefix": prefix, "delay": delay, "overlap": overlap}


def plans_by_default(policy: Any) -> bool:
    """Whether the commands ask ``policy`` for its plan text when neither ``--plan`` nor
    ``--no-plan`` is given: a PyTorch policy whose training saw sub-task labels beside its
    actions (``trained_with_plans`` in its ``config.json``); never an ONNX export, which
    holds no text decoder."""
    return bool(getattr(policy, "trained_with_plans", False))


class PolicyUnavailable(RuntimeError):
    """The policy could not answer (server down, timeout); the caller holds the robot."""


@dataclass
class ChunkResult:
    actions: np.ndarray  # (K, D) float32, robot units
    plan: str | None = None
    infer_ms: float = 0.0  # the model's own time
    meta: dict[str, Any] | None = None  # e.g. the server's timing dict


class ChunkSource(Protocol):
    def infer(self, frame: dict[str, Any]) -> ChunkResult: ...

    def reset(self) -> None: ...


class LocalPolicy:
    """Runs a policy object (``predict_chunk``/``generate_plan``/``reset``) in this process.

    ``with_plan``: also call ``generate_plan`` each chunk (costs a text decode); None (what
    the commands pass without --plan/--no-plan): when the policy was trained with plan labels
    (:func:`plans_by_default`).
    """

    def __init__(self, policy: Any, with_plan: bool | None = False) -> None:
        self.policy = policy
        self.with_plan = plans_by_default(policy) if with_plan is None else bool(with_plan)
        if self.with_plan and not getattr(policy, "generates_plans", True):
            from embodied_mm.errors import UsageError

            raise UsageError(
                "--plan needs the PyTorch checkpoint: an ONNX export holds no plan text"
            )
        cfg = policy.config
        self.cameras: tuple[str, ...] = tuple(cfg.cameras)
        self.state_dim: int = int(cfg.state_dim)
        self.action_dim: int = int(cfg.action_dim)
        self.chunk_size: int = int(cfg.chunk_size)
        self.image_size: int | None = getattr(cfg, "image_size", None)
        self.state_names: list[str] | None = _state_names(policy)
        # the largest delay a committed prefix may have (--mode rtc); 0: this policy cannot
        self.rtc_max_delay: int = int(getattr(policy, "rtc_max_delay", 0))

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | Path, with_plan: bool | None = False, device: str | None = None
    ) -> LocalPolicy:
        return cls(load_policy(checkpoint, device=device), with_plan=with_plan)

    def metadata(self) -> dict[str, Any]:
        return {
            "cameras": list(self.cameras),
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "chunk_size": self.chunk_size,
            # the frame size the policy was trained on: cameras are resized to it client-side,
            # which also keeps requests small
            "policy_image_size": self.image_size,
            # the state layout the policy was trained on (its processor's observation_check),
            # None when unknown
            "state_names": self.state_names,
            # real-time chunking: the largest committed prefix delay the policy continues
            # (0: it cannot; --mode rtc needs a flow head or --rtc-max-delay training)
            "rtc_max_delay": self.rtc_max_delay,
        }

    def reset(self) -> None:
        self.policy.reset()

    def _batch(self, frames: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch: dict[str, Any] = {}
        for cam in self.cameras:
            key = image_key(cam)
            batch[key] = torch.from_numpy(np.stack([f[key] for f in frames]))  # (B, H, W, 3) uint8
        batch[OBS_STATE] = torch.from_numpy(
            np.stack([np.asarray(f[OBS_STATE], dtype=np.float32) for f in frames])
        )  # (B, S)
        batch[TASK] = [str(f[TASK]) for f in frames]
        return batch

    def infer_batch(self, frames: list[dict[str, Any]]) -> list[ChunkResult]:
        """One forward pass for several observations (the server batches concurrent clients)."""
        import torch

        t0 = time.perf_counter()
        batch = self._batch(frames)
        rtc = rtc_request(frames, self.action_dim)
        if rtc is not None and self.rtc_max_delay == 0:
            raise ValueError(
                "this policy cannot continue a committed prefix (--mode rtc): train a chunk "
                "head with --rtc-max-delay D, or use a flow head"
            )
        kwargs = {} if rtc is None else {k: torch.from_numpy(v) for k, v in rtc.items()}
        with torch.inference_mode():
            chunk = self.policy.predict_chunk(batch, **kwargs)  # (B, K, D)
            plans = self.policy.generate_plan(batch) if self.with_plan else [None] * len(frames)
        actions = chunk.detach().float().cpu().numpy() if hasattr(chunk, "detach") else chunk
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape[0] != len(frames) or actions.ndim != 3:
            raise RuntimeError(
                f"predict_chunk returned shape {actions.shape} for {len(frames)} frames"
            )
        ms = (time.perf_counter() - t0) * 1e3
        return [ChunkResult(actions[i], plans[i], ms) for i in range(len(frames))]

    def infer(self, frame: dict[str, Any]) -> ChunkResult:
        return self.infer_batch([frame])[0]
