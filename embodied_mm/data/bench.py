"""``embodied-mm bench data``: how fast the window loader feeds a trainer.

Measures, on a dataset of 2 cameras at 128×128 (synthetic unless ``dataset`` is given):
decode cost per frame for sequential and random access, and DataLoader samples/s for
K-action-chunk windows with 0 (in-process), 1 and 2 workers, shuffled and in order.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from embodied_mm.data.lerobot_format import build_features
from embodied_mm.data.synthetic import synthetic_episode
from embodied_mm.data.torch_dataset import LeRobotWindowDataset, chunk_delta_timestamps
from embodied_mm.data.video import VideoDecoder
from embodied_mm.data.writer import DatasetWriter
from embodied_mm.features import ACTION


def make_bench_dataset(root: Path, episodes: int, length: int, fps: int = 20) -> Path:
    features = build_features(
        state_dim=15,
        action_dim=7,
        cameras={"front": (128, 128), "wrist": (128, 128)},
        fps=fps,
        codec="h264",
    )
    with DatasetWriter.create(root, features, fps, robot_type="synthetic") as writer:
        for e in range(episodes):
            writer.add_episode(synthetic_episode(length, seed=e))
    return root


def _timed(fn: Callable[[], int], min_s: float) -> tuple[float, int]:
    """Repeat ``fn`` (returns work units) for at least ``min_s``; (seconds, units)."""
    t0, units = time.perf_counter(), 0
    while time.perf_counter() - t0 < min_s:
        units += fn()
    return time.perf_counter() - t0, units


def bench_decode(root: Path, seconds: float) -> dict[str, float]:
    ds = LeRobotWindowDataset(root)
    ep = ds.meta.episodes[0]
    path, _ = ep.videos[ds.camera_keys[0]]
    times = [i / ds.fps for i in range(ep.length)]

    def sequential() -> int:
        dec = VideoDecoder(path)
        for t in times:
            dec.frames_at([t])
        dec.close()
        return len(times)

    dec = VideoDecoder(path)
    rng = random.Random(0)

    def random_access() -> int:
        for _ in range(20):
            dec.frames_at([rng.choice(times)])
        return 20

    s_t, s_n = _timed(sequential, seconds)
    r_t, r_n = _timed(random_access, seconds)
    return {
        "sequential_ms_per_frame": 1e3 * s_t / s_n,
        "random_ms_per_frame": 1e3 * r_t / r_n,
        "random_frames_decoded_per_access": dec.decoded / max(r_n, 1),
    }


def bench_loader(
    root: Path, chunk: int, batch_size: int, workers: int, shuffle: bool, batches: int
) -> float:
    """Samples/s of a DataLoader over K-action windows with both cameras decoded."""
    import torch
    from torch.utils.data import DataLoader

    fps = LeRobotWindowDataset(root).fps
    ds = LeRobotWindowDataset(root, {ACTION: chunk_delta_timestamps(fps, 1, chunk, [])[ACTION]})
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    it = iter(loader)
    next(it)  # worker start-up and first decoder opens are not steady state
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        n += len(batch["index"])
    return n / (time.perf_counter() - t0)


def run_bench(
    dataset: Path | None = None,
    episodes: int = 20,
    length: int = 100,
    chunk: int = 8,
    batch_size: int = 32,
    batches: int = 20,
    seconds: float = 1.0,
    worker_counts: tuple[int, ...] = (0, 1, 2),
    echo: Callable[[str], None] = print,
) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if dataset is None:
            t0 = time.perf_counter()
            dataset = make_bench_dataset(Path(tmp) / "bench", episodes, length)
            dt = time.perf_counter() - t0
            results["write_frames_per_s"] = episodes * length / dt
            echo(
                f"wrote {episodes}x{length} frames (2 cams 128x128): "
                f"{results['write_frames_per_s']:.0f} frames/s"
            )
        for k, v in bench_decode(dataset, seconds).items():
            results[f"decode_{k}"] = v
            echo(f"decode {k}: {v:.3f}")
        for workers in worker_counts:
            for shuffle in (True, False):
                sps = bench_loader(dataset, chunk, batch_size, workers, shuffle, batches)
                key = f"loader_{'random' if shuffle else 'sequential'}_w{workers}_samples_per_s"
                results[key] = sps
                echo(
                    f"loader K={chunk} batch={batch_size} workers={workers} "
                    f"{'random' if shuffle else 'sequential'}: {sps:.0f} samples/s"
                )
    return results
