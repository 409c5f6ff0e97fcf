"""``embodied-mm bench train``: the trainer's overhead against a bare PyTorch loop, a
training step with the prefix run once for the action and plan suffixes against each suffix
on its whole sequence, the end-to-end rate with the video loader, and DDP scaling from 1 to
2 processes on the CPU."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from embodied_mm.train.config import TrainConfig
from embodied_mm.train.trainer import collate, train


class _ListDataset(Dataset):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def _write_dataset(root: Path, episodes: int, length: int) -> None:
    from embodied_mm.data import synthetic
    from embodied_mm.data.lerobot_format import build_features
    from embodied_mm.data.writer import DatasetWriter

    hw = (128, 128)
    features = build_features(state_dim=15, action_dim=7, cameras={"front": hw, "wrist": hw},
                              fps=20, codec="h264")  # fmt: skip
    with DatasetWriter.create(root, features, 20, robot_type="synthetic") as writer:
        for i in range(episodes):
            writer.add_episode(synthetic.synthetic_episode(length, seed=i, hw=hw))


def _bare_loop(policy: torch.nn.Module, dataset: Dataset, cfg: TrainConfig, steps: int) -> float:
    """samples/s of the plainest loop (a DataLoader, AdamW, clipping) over the same model and
    samples, timed like the trainer: from the end of the first step to the end of the last."""
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    policy.train()
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate,
                        drop_last=True)  # fmt: skip
    t0 = 0.0
    for i, batch in enumerate(loader):
        if i == steps:
            break
        loss, _ = policy.compute_loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i == 0:
            t0 = time.perf_counter()
    return (min(steps, len(loader)) - 1) * cfg.batch_size / (time.perf_counter() - t0)


def _prefix_sharing(policy: Any, batch: dict[str, Any], rounds: int) -> tuple[float, float]:
    """Median seconds of one training step (loss, backward) with the prefix shared by the
    action and plan suffixes and with each suffix on its whole sequence, interleaved."""
    policy.train()
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds + 1):  # the first round warms up
        for share in (True, False):
            policy.backbone.share_prefix = share
            t0 = time.perf_counter()
            loss, _ = policy.compute_loss(batch)
            loss.backward()
            times[share].append(time.perf_counter() - t0)
            policy.zero_grad(set_to_none=True)
    policy.backbone.share_prefix = True
    return statistics.median(times[True][1:]), statistics.median(times[False][1:])


def _ddp_rate(dataset: Path, out: Path, processes: int, steps: int, batch: int) -> float:
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(accelerate), "launch", "--multi_gpu" if processes > 1 else "--cpu",
        "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "-m", "embodied_mm.cli.main", "train",
        "--dataset", str(dataset), "--out", str(out), "--steps", str(steps),
        "--batch-size", str(batch), "--save-every", str(10 * steps), "--log-every", "10",
    ]  # fmt: skip
    threads = max(1, (os.cpu_count() or 2) // processes)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"DDP run failed:\n{proc.stderr[-2000:]}")
    match = re.search(r"([\d.]+) samples/s", proc.stdout)
    if match is None:
        raise RuntimeError(f"no samples/s in the trainer's output:\n{proc.stdout[-1000:]}")
    return float(match.group(1))


def run_train_bench(recipe: str = "vla-chunk", steps: int = 20, batch_size: int = 8,
                    ddp: bool = True) -> list[tuple[str, float, str]]:  # fmt: skip
    """Rows of (what, samples/s, note)."""
    from accelerate.utils import set_seed

    from embodied_mm.data.torch_dataset import build_window_dataset
    from embodied_mm.policies.recipes import make_policy

    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        _write_dataset(root, episodes=4, length=max(40, steps * batch_size // 4 + 10))
        video_ds = build_window_dataset(root, chunk_size=8)
        n = steps * batch_size
        memory_ds = _ListDataset([video_ds[i] for i in range(n)])
        cfg = TrainConfig(recipe=recipe, out=str(Path(tmp) / "run"), steps=steps,
                          batch_size=batch_size, save_every=10 * steps, log_every=10,
                          warmup_steps=2)  # fmt: skip

        set_seed(0)
        bare = _bare_loop(make_policy(recipe, device="cpu"), memory_ds, cfg, steps)
        rows.append(("bare PyTorch loop (DataLoader over in-memory samples)", bare, "reference"))

        set_seed(0)
        policy = make_policy(recipe, device="cpu")
        trainer = train(cfg, policy, memory_ds).samples_per_s
        overhead = bare / trainer - 1
        rows.append(("embodied-mm trainer (same in-memory samples)", trainer,
                     f"overhead {overhead:+.1%} (goal <= 10%)"))  # fmt: skip

        batch = collate([memory_ds[i] for i in range(batch_size)])  # every sample has a plan
        shared, whole = _prefix_sharing(make_policy(recipe, device="cpu"), batch, rounds=10)
        rows.append(
            (
                "training step, prefix run once for action + plan suffixes",
                batch_size / shared,
                f"{shared * 1e3:.0f} ms/step, x{whole / shared:.2f}",
            )
        )
        rows.append(("training step, each suffix on its whole sequence", batch_size / whole,
                     f"{whole * 1e3:.0f} ms/step (interleaved with the row above)"))  # fmt: skip

        for workers in (0, 2):
            cfg_v = TrainConfig(**{**vars(cfg), "num_workers": workers,
                                   "out": str(Path(tmp) / f"run_v{workers}")})  # fmt: skip
            rate = train(cfg_v, make_policy(recipe, device="cpu"), video_ds).samples_per_s
            rows.append((f"trainer + video loader, {workers} workers", rate, "end to end"))

        if ddp:
            one = _ddp_rate(root, Path(tmp) / "ddp1", 1, steps, batch_size)
            two = _ddp_rate(root, Path(tmp) / "ddp2", 2, steps, batch_size)
            rows.append(("accelerate launch, 1 process (2 threads)", one, "video loader"))
            rows.append(("accelerate launch, 2 processes DDP/gloo (1 thread each)", two,
                         f"scaling x{two / one:.2f}"))  # fmt: skip
    return rows
