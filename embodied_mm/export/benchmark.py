"""``embodied-mm bench export``: PyTorch eager vs onnxruntime fp32 vs onnxruntime int8.

Per recipe, at batch 1 through each backend's ``predict_chunk`` (the call the controller
makes, instruction tokenisation included):

- latency p50/p99: the three backends are timed round-robin in one process, call by call, so
  load from other processes on the machine hits them alike; compare the ratios;
- model file size: ``model.safetensors`` vs the fp32 ONNX files vs the int8 ones;
- peak memory: a fresh subprocess per backend imports its runtime, records its peak RSS
  (``VmHWM`` in ``/proc/self/status``; not ``ru_maxrss``, which keeps the forking parent's
  peak across ``exec``), loads the model, runs 5 calls, and reports the growth of the peak
  RSS: what loading and running the model adds on top of the runtime libraries.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# "-b1": the export with a fixed batch of 1 (``export --batch 1``); the others have a
# dynamic batch axis.
BACKENDS = ("torch", "ort-fp32", "ort-int8", "ort-fp32-b1", "ort-int8-b1")


def _load(backend: str, checkpoint: Path, export: Path, threads: int | None) -> Any:
    """A policy object with ``predict_chunk`` on numpy observations."""
    if backend == "torch":
        import torch

        from embodied_mm.model.modeling_vla import VLAPolicy

        if threads:
            torch.set_num_threads(threads)
        policy = VLAPolicy.from_pretrained(checkpoint, device="cpu").eval()

        def predict(obs: dict[str, Any]) -> np.ndarray:
            batch = {k: v if k == "task" else torch.from_numpy(v) for k, v in obs.items()}
            return policy.predict_chunk(batch).numpy()

        predict.config = policy.config  # type: ignore[attr-defined]
        return predict
    from embodied_mm.export.ort_policy import OrtPolicy

    precision = backend.split("-")[1]
    policy = OrtPolicy(export, precision=precision, threads=threads)
    return policy.predict_chunk


def _peak_rss_mib() -> float:
    """This process's peak resident set size (Linux ``VmHWM``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise RuntimeError("/proc/self/status has no VmHWM (peak memory needs Linux)")


def memory_worker(backend: str, checkpoint: str, export: str, threads: int) -> None:
    """Entry of the fresh subprocess: prints {"base_mb", "peak_mb"} as JSON."""
    if backend == "torch":
        import torch  # noqa: F401  (the runtime's own footprint belongs to the baseline)
        import transformers  # noqa: F401
    else:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    base = _peak_rss_mib()
    from embodied_mm.export.manifest import Manifest
    from embodied_mm.export.ort_policy import random_observation

    m = Manifest.load(export)
    predict = _load(backend, Path(checkpoint), Path(export), threads or None)
    obs = random_observation(m, batch=1, seed=0)
    for _ in range(5):
        predict(obs)
    peak = _peak_rss_mib()
    print(json.dumps({"base_mb": base, "peak_mb": peak}))


def _memory(backend: str, checkpoint: Path, export: Path, threads: int | None) -> dict[str, float]:
    code = (
        "import sys; from embodied_mm.export.benchmark import memory_worker; "
        "memory_worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))"
    )
    args = [sys.executable, "-c", code, backend, str(checkpoint), str(export), str(threads or 0)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker for {backend} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_recipe(
    recipe: str, size: str, iters: int, threads: int | None, work: Path
) -> dict[str, Any]:
    from embodied_mm.export.onnx_export import export_checkpoint
    from embodied_mm.export.ort_policy import random_observation
    from embodied_mm.model.pretrained import WEIGHTS_FILE
    from embodied_mm.policies.recipes import make_policy

    checkpoint = work / f"{recipe}-ckpt"
    exports = {"": work / f"{recipe}-onnx", "-b1": work / f"{recipe}-onnx-b1"}
    make_policy(recipe, size, random_weights=size != "tiny", device="cpu").save_pretrained(
        checkpoint
    )
    t0 = time.perf_counter()
    manifest = export_checkpoint(checkpoint, exports[""], quantize="int8")
    export_s = time.perf_counter() - t0
    export_checkpoint(checkpoint, exports["-b1"], quantize="int8", batch=1)

    def export_of(backend: str) -> Path:
        return exports["-b1" if backend.endswith("-b1") else ""]

    predicts = {b: _load(b, checkpoint, export_of(b), threads) for b in BACKENDS}
    obs = random_observation(manifest, batch=1, seed=1)
    for predict in predicts.values():  # warm-up: lazy init, allocator, ORT's first-run planning
        for _ in range(3):
            predict(obs)
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for _ in range(iters):
        for b, predict in predicts.items():
            t = time.perf_counter()
            predict(obs)
            times[b].append((time.perf_counter() - t) * 1e3)
    file_bytes = {b: manifest.total_bytes(b.split("-")[1]) for b in BACKENDS[1:]}
    file_bytes["torch"] = (checkpoint / WEIGHTS_FILE).stat().st_size
    rows = {}
    for b in BACKENDS:
        mem = _memory(b, checkpoint, export_of(b), threads)
        rows[b] = {
            "p50_ms": float(np.percentile(times[b], 50)),
            "p99_ms": float(np.percentile(times[b], 99)),
            "file_mb": file_bytes[b] / 1e6,
            "peak_rss_delta_mb": mem["peak_mb"] - mem["base_mb"],
            "peak_rss_mb": mem["peak_mb"],
        }
    return {"recipe": recipe, "export_s": export_s, "rows": rows}


def run(recipes: list[str], size: str, iters: int, threads: int | None, out: Path | None) -> str:
    import os

    from embodied_mm.policies.recipes import RECIPES

    for r in recipes:
        RECIPES.get(r)  # unknown names fail before any work, with the known ones
    lines = [
        f"`embodied-mm bench export` ({size}, batch 1, {iters} round-robin calls, "
        f"threads={threads or os.cpu_count()}, load avg {os.getloadavg()[0]:.1f})",
        "",
        "| recipe | backend | p50 ms | p99 ms | speed-up vs eager (p50) | file MB "
        "| peak RSS delta MiB | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    export_times = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in recipes:
            res = bench_recipe(recipe, size, iters, threads, Path(tmp))
            export_times.append(f"{recipe} {res['export_s']:.1f} s")
            eager = res["rows"]["torch"]["p50_ms"]
            for b, r in res["rows"].items():
                lines.append(
                    f"| {recipe} | {b} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                    f"| {eager / r['p50_ms']:.2f}x | {r['file_mb']:.2f} "
                    f"| {r['peak_rss_delta_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
                )
    lines += ["", "Export time (fp32 + int8, dynamic batch): " + ", ".join(export_times)]
    text = "\n".join(lines)
    if out is not None:
        out.write_text(text + "\n")
    return text
