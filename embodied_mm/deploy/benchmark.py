"""``embodied-mm bench deploy``: what the deployment path costs on top of the model.

1. Round-trip overhead over loopback: client-measured round trip minus the server's own model
   time (``server_timing.infer_ms``), for two 128×128 images + a 15-D state. Goal p50 ≤ 2 ms.
2. Control rate with a policy slower than the control period: the tiny recipe with an added
   fixed latency (standing in for a large model on a remote GPU) drives the sim at the target
   rate, executing chunks synchronously (open loop, temporal ensembling) and asynchronously.
3. Server throughput (requests/s) with 1, 4 and 8 concurrent clients, and the mean batch size
   the server formed.

The server runs as a separate ``embodied-mm serve`` process, like a deployment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from embodied_mm.features import OBS_STATE, TASK, image_key
from embodied_mm.runtime.inference import ChunkResult, LocalPolicy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(checkpoint: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "embodied_mm.cli.main", "serve", "--checkpoint", str(checkpoint),
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("policy server exited during start-up") from None
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError("policy server did not become healthy")


def _obs(rng: np.random.Generator, cameras: list[str], state_dim: int) -> dict[str, Any]:
    o: dict[str, Any] = {
        image_key(c): rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for c in cameras
    }
    o[OBS_STATE] = rng.standard_normal(state_dim).astype(np.float32)
    o[TASK] = "pick up the red cube"
    return o


def round_trip(url: str, n: int = 300) -> dict[str, float]:
    from embodied_mm.deploy.client import PolicyClient

    client = PolicyClient(url, timeout_s=30)
    meta = client.connect()
    rng = np.random.default_rng(0)
    obs = [_obs(rng, meta["cameras"], meta["state_dim"]) for _ in range(8)]
    for i in range(20):  # warm-up
        client.infer(obs[i % 8])
    rtt, model, overhead = [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        reply = client.infer(obs[i % 8])
        dt = (time.perf_counter() - t0) * 1e3
        rtt.append(dt)
        model.append(reply["server_timing"]["infer_ms"])
        overhead.append(dt - reply["server_timing"]["infer_ms"])
    client.close()
    p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    return {
        "rtt_p50_ms": p(rtt, 50),
        "model_p50_ms": p(model, 50),
        "overhead_p50_ms": p(overhead, 50),
        "overhead_p99_ms": p(overhead, 99),
    }


def throughput(url: str, clients: int, seconds: float = 4.0) -> dict[str, float]:
    from embodied_mm.deploy.client import PolicyClient

    stop = threading.Event()
    counts = [0] * clients
    batch_sizes: list[int] = []

    def worker(i: int) -> None:
        c = PolicyClient(url, timeout_s=30)
        meta = c.connect()
        o = _obs(np.random.default_rng(i), meta["cameras"], meta["state_dim"])
        while not stop.is_set():
            batch_sizes.append(c.infer(o)["server_timing"]["batch_size"])
            counts[i] += 1
        c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # connect and warm up
    start = sum(counts)
    t0 = time.perf_counter()
    time.sleep(seconds)
    done = sum(counts) - start
    elapsed = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join(timeout=30)
    return {
        "clients": clients,
        "req_per_s": done / elapsed,
        "mean_batch": float(np.mean(batch_sizes)),
    }


class SlowedPolicy:
    """The real policy plus a fixed latency: a stand-in for a model slower than the loop."""

    def __init__(self, inner: LocalPolicy, extra_ms: float) -> None:
        self.inner = inner
        self.extra_s = extra_ms / 1e3

    def infer(self, frame: dict[str, Any]) -> ChunkResult:
        t0 = time.perf_counter()
        r = self.inner.infer(frame)
        time.sleep(max(0.0, self.extra_s - (time.perf_counter() - t0)))
        r.infer_ms = (time.perf_counter() - t0) * 1e3
        return r

    def reset(self) -> None:
        self.inner.reset()


def control_rate(
    policy: LocalPolicy, hz: float = 20.0, latency_ms: float = 120.0, steps: int = 80
) -> list[dict[str, Any]]:
    from embodied_mm.deploy.session import make_executor
    from embodied_mm.runtime.adapters.sim import SimRobot
    from embodied_mm.runtime.loop import ControllerLoop
    from embodied_mm.runtime.safety import SafetyFilter

    rows = []
    robot = SimRobot("pick_lift", engine="mujoco", seed=0, max_episode_steps=10_000)
    with robot:
        # refill when the queue holds less than the latency, in steps, plus one
        refill = int(np.ceil(latency_ms / 1e3 * hz)) + 1
        for mode in ("open_loop", "ensemble", "async"):
            robot.reset_episode(seed=0)
            executor = make_executor(mode, SlowedPolicy(policy, latency_ms), refill_at=refill)
            safety = SafetyFilter(robot.default_safety(), hz, robot.ee_position_fn())
            try:
                r = ControllerLoop(robot, executor, safety, hz).run(steps)
            finally:
                executor.close()
            rows.append(
                {
                    "mode": mode,
                    "target_hz": hz,
                    "achieved_hz": r.achieved_hz,
                    "deadline_misses": r.timing["deadline_misses"],
                    "steps": r.steps,
                    "step_p99_ms": r.timing["step_p99_ms"],
                    "holds": r.interventions.get("watchdog_hold", 0),
                }
            )
    return rows


def run(out: Path | None = None, latency_ms: float = 120.0, hz: float = 20.0) -> str:
    """Run all three benchmarks; returns a markdown report (also written to ``out``)."""
    import torch

    from embodied_mm.policies import make_policy

    torch.set_num_threads(1)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        make_policy("vla-chunk", size="tiny").save_pretrained(ckpt)
        port = _free_port()
        env_threads = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        server = _start_server(ckpt, port)
        if env_threads is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
        url = f"ws://127.0.0.1:{port}"
        try:
            rt = round_trip(url)
            tp = [throughput(url, n) for n in (1, 4, 8)]
        finally:
            server.terminate()
            server.wait(timeout=30)
        policy = LocalPolicy.from_checkpoint(ckpt, device="cpu")
        rates = control_rate(policy, hz=hz, latency_ms=latency_ms)
    lines.append("### Loopback round trip (two 128×128 images + 15-D state, tiny vla-chunk)")
    lines.append("")
    lines.append("| round trip p50 | model p50 | overhead p50 | overhead p99 | goal |")
    lines.append("|---|---|---|---|---|")
    lines.append(
        f"| {rt['rtt_p50_ms']:.2f} ms | {rt['model_p50_ms']:.2f} ms | "
        f"**{rt['overhead_p50_ms']:.2f} ms** | {rt['overhead_p99_ms']:.2f} ms | p50 ≤ 2 ms |"
    )
    lines.append("")
    lines.append(
        f"### Control rate, policy latency {latency_ms:.0f} ms > period {1e3 / hz:.0f} ms "
        f"(sim pick_lift, chunk K=8)"
    )
    lines.append("")
    lines.append("| execution | target Hz | achieved Hz | deadline misses | step p99 | holds |")
    lines.append("|---|---|---|---|---|---|")
    for r in rates:
        lines.append(
            f"| {r['mode']} | {r['target_hz']:.0f} | {r['achieved_hz']:.1f} | "
            f"{r['deadline_misses']}/{r['steps']} | {r['step_p99_ms']:.0f} ms | {r['holds']} |"
        )
    lines.append("")
    lines.append("### Server throughput (tiny vla-chunk, one model worker, batching)")
    lines.append("")
    lines.append("| clients | requests/s | mean batch |")
    lines.append("|---|---|---|")
    for t in tp:
        lines.append(f"| {t['clients']} | {t['req_per_s']:.0f} | {t['mean_batch']:.2f} |")
    report = "\n".join(lines) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
    return report
