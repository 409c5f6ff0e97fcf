"""``embodied-mm bench deploy``: what the deployment path costs on top of the model.

1. Round trip over loopback for two 128×128 images + a 15-D state, validation on, split into
   the model's own time (``server_timing.infer_ms``, measured around ``infer_batch`` in the
   model thread), queueing (``queue_ms``: the hand-off to the model thread and any wait for
   it), the server's decode + validation (``decode_ms``) and the framework overhead (client
   round trip − model time: encoding, both hand-offs, websocket framing, TCP, decoding,
   validation). Two servers are measured in interleaved rounds, so that load from other jobs
   hits both alike: a *zeros* policy (returns a zero chunk at once, model time ≈ 0: the
   framework's own cost; goal p50 ≤ 0.7 ms) and the tiny ``vla-chunk`` recipe.
2. Control rate with a policy slower than the control period: the tiny recipe with an added
   fixed latency (standing in for a large model on a remote GPU) drives the sim at the target
   rate, executing chunks synchronously (open loop, temporal ensembling) and asynchronously.
3. Server throughput (requests/s) with 1, 4 and 8 concurrent clients, and the mean batch size
   the server formed.

Each server runs as a separate process, like a deployment: ``embodied-mm serve`` for the
recipe, :func:`serve_zeros` for the zeros policy.
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

from embodied_mm.features import ACTION, OBS_STATE, TASK, image_key
from embodied_mm.runtime.inference import ChunkResult, LocalPolicy

OVERHEAD_GOAL_MS = 0.7  # p50, zeros policy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(proc: subprocess.Popen, port: int) -> subprocess.Popen:
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


def _spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one torch thread, as measured
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )


def _start_server(checkpoint: Path, port: int) -> subprocess.Popen:
    args = ["-m", "embodied_mm.cli.main", "serve", "--checkpoint", str(checkpoint)]
    return _wait_healthy(_spawn([*args, "--port", str(port)]), port)


def _start_zeros_server(checkpoint: Path, port: int) -> subprocess.Popen:
    code = "import sys; from embodied_mm.deploy.benchmark import serve_zeros as s; s(*sys.argv[1:])"
    return _wait_healthy(_spawn(["-c", code, str(checkpoint), str(port)]), port)


class ZerosPolicy:
    """A policy that answers a zero chunk at once, with the metadata and state stats of a real
    one: serving it measures what the server and the wire cost without a model."""

    def __init__(self, like: LocalPolicy) -> None:
        self._meta = like.metadata()
        self.policy = like.policy  # its normalisation stats set the server's state range
        self._chunk = np.zeros((like.chunk_size, like.action_dim), np.float32)  # (K, D)

    def metadata(self) -> dict[str, Any]:
        return dict(self._meta)

    def reset(self) -> None:
        pass

    def infer_batch(self, frames: list[dict[str, Any]]) -> list[ChunkResult]:
        return [ChunkResult(self._chunk) for _ in frames]


def serve_zeros(checkpoint: str | Path, port: int | str) -> None:
    """Serve :class:`ZerosPolicy` shaped like ``checkpoint`` on loopback (until killed)."""
    from embodied_mm.deploy.server import PolicyServer

    like = LocalPolicy.from_checkpoint(checkpoint, device="cpu")
    PolicyServer(ZerosPolicy(like), "127.0.0.1", int(port)).run()


def _obs(rng: np.random.Generator, cameras: list[str], state_dim: int) -> dict[str, Any]:
    o: dict[str, Any] = {
        image_key(c): rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for c in cameras
    }
    o[OBS_STATE] = rng.uniform(-1, 1, state_dim).astype(np.float32)  # inside any stats' range
    o[TASK] = "pick up the red cube"
    return o


class _RoundTrips:
    """One connected client and the samples of its requests (ms)."""

    FIELDS = ("rtt", "model", "queue", "decode", "overhead")

    def __init__(self, url: str) -> None:
        from embodied_mm.deploy.client import PolicyClient

        self.client = PolicyClient(url, timeout_s=30)
        meta = self.client.connect()
        rng = np.random.default_rng(0)
        self.obs = [_obs(rng, meta["cameras"], meta["state_dim"]) for _ in range(8)]
        self.samples: dict[str, list[float]] = {f: [] for f in self.FIELDS}
        self.round_p50: list[float] = []  # overhead p50 of each round
        self.run(20, keep=False)  # warm-up

    def run(self, n: int, keep: bool = True) -> None:
        overhead = []
        for i in range(n):
            t0 = time.perf_counter()
            reply = self.client.infer(self.obs[i % len(self.obs)])
            rtt = (time.perf_counter() - t0) * 1e3
            timing = reply["server_timing"]
            overhead.append(rtt - timing["infer_ms"])
            if keep:
                for name, value in (
                    ("rtt", rtt),
                    ("model", timing["infer_ms"]),
                    ("queue", timing["queue_ms"]),
                    ("decode", timing["decode_ms"]),
                    ("overhead", overhead[-1]),
                ):
                    self.samples[name].append(value)
        if keep:
            self.round_p50.append(float(np.percentile(overhead, 50)))

    def summary(self) -> dict[str, float]:
        out = {f"{f}_p50_ms": float(np.percentile(v, 50)) for f, v in self.samples.items()}
        out["overhead_p99_ms"] = float(np.percentile(self.samples["overhead"], 99))
        out["overhead_round_p50_min_ms"] = min(self.round_p50)
        out["overhead_round_p50_max_ms"] = max(self.round_p50)
        out["overhead_round_p50_median_ms"] = float(np.median(self.round_p50))
        out["rounds"] = len(self.round_p50)
        out["requests"] = len(self.samples["rtt"])
        self.client.close()
        return out


def round_trips(urls: dict[str, str], rounds: int = 10, n: int = 200) -> dict[str, dict]:
    """Per server: ``rounds`` rounds of ``n`` back-to-back requests, the servers taking turns
    round by round; medians over all requests and the spread of the rounds' overhead p50."""
    clients = {name: _RoundTrips(url) for name, url in urls.items()}
    for _ in range(rounds):
        for c in clients.values():
            c.run(n)
    return {name: c.summary() for name, c in clients.items()}


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


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)


def round_trip_table(rt: dict[str, dict]) -> list[str]:
    """Markdown rows for :func:`round_trips` results."""
    lines = [
        "| policy | round trip p50 | model p50 | queue p50 | decode p50 | overhead p50 "
        "(rounds' range) | overhead p99 | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rt.items():
        goal = ""
        if name == "zeros":
            met = "✔" if r["overhead_p50_ms"] <= OVERHEAD_GOAL_MS else "✘"
            goal = f"p50 ≤ {OVERHEAD_GOAL_MS} ms {met}"
        lines.append(
            f"| {name} | {r['rtt_p50_ms']:.3f} ms | {r['model_p50_ms']:.3f} ms | "
            f"{r['queue_p50_ms']:.3f} ms | {r['decode_p50_ms']:.3f} ms | "
            f"**{r['overhead_p50_ms']:.3f} ms** ({r['overhead_round_p50_min_ms']:.3f}–"
            f"{r['overhead_round_p50_max_ms']:.3f}) | {r['overhead_p99_ms']:.2f} ms | {goal} |"
        )
    return lines


def measure_round_trips(checkpoint: Path, rounds: int = 10, n: int = 200) -> dict[str, dict]:
    """Start the zeros and the ``checkpoint`` server and run :func:`round_trips` on both."""
    zeros_port, model_port = _free_port(), _free_port()
    zeros = _start_zeros_server(checkpoint, zeros_port)
    try:
        model = _start_server(checkpoint, model_port)
        try:
            urls = {"zeros": zeros_port, "tiny": model_port}
            return round_trips({k: f"ws://127.0.0.1:{p}" for k, p in urls.items()}, rounds, n)
        finally:
            _stop(model)
    finally:
        _stop(zeros)


def uniform_stats(state_dim: int = 15, action_dim: int = 7) -> dict[str, dict[str, list[float]]]:
    """LeRobot-style stats of features spread uniformly over [-1, 1], as the benchmark's
    observations are: a served policy gets a real state range from them (the placeholder
    unit stats of a policy built without a dataset give none, see ``deploy/state_range``)."""

    def uniform(dim: int) -> dict[str, list[float]]:
        return {
            "mean": [0.0] * dim,
            "std": [3**-0.5] * dim,
            "min": [-1.0] * dim,
            "max": [1.0] * dim,
            "q01": [-0.98] * dim,
            "q99": [0.98] * dim,
        }

    return {OBS_STATE: uniform(state_dim), ACTION: uniform(action_dim)}


def run(
    out: Path | None = None,
    latency_ms: float = 120.0,
    hz: float = 20.0,
    rounds: int = 10,
    requests: int = 200,
) -> str:
    """Run all three benchmarks; returns a markdown report (also written to ``out``)."""
    import torch

    from embodied_mm.policies import make_policy

    torch.set_num_threads(1)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        # stats describing the states the benchmark sends, so the state-range check runs
        make_policy("vla-chunk", size="tiny", stats=uniform_stats()).save_pretrained(ckpt)
        rt = measure_round_trips(ckpt, rounds, requests)
        port = _free_port()
        server = _start_server(ckpt, port)
        try:
            tp = [throughput(f"ws://127.0.0.1:{port}", n) for n in (1, 4, 8)]
        finally:
            _stop(server)
        policy = LocalPolicy.from_checkpoint(ckpt, device="cpu")
        rates = control_rate(policy, hz=hz, latency_ms=latency_ms)
    lines.append(
        f"### Loopback round trip (two 128×128 images + 15-D state, validation on; "
        f"{rounds} interleaved rounds × {requests} requests per policy)"
    )
    lines.append("")
    lines.append("overhead = round trip − model time; queue and decode are part of it.")
    lines.append("")
    lines.extend(round_trip_table(rt))
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
