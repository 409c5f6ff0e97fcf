"""``embodied-mm bench int8``: every int8 scheme of ``quantize.SCHEMES``, on both x86 kernels.

Per policy (tiny chunk and flow recipes with seeded random weights, and any ``--checkpoint``)
and scheme: the max |int8 - fp32| in normalised action units on fixed observations, on this
CPU and, when ``qemu-x86_64`` is installed, on an emulated CPU without VNNI (see
``cpu_kernels.py``); and the batch-1 latency speed-up of the int8 graph over the fp32 one on
this CPU (p50, round-robin calls, one thread). Observations: random ones and, with
``--dataset``, frames of a LeRobot dataset (static schemes calibrate on other frames of the
same source). One more row runs the ``dynamic`` model with onnxruntime's
``session.x64quantprecision`` option (u8×u8 kernels where u8×s8 would saturate).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

EVAL_OBSERVATIONS = 8
X64_PRECISION = "dynamic + session.x64quantprecision"


def _latency_ms(models: dict[str, Path], feeds: dict[str, np.ndarray], iters: int) -> dict:
    """p50 batch-1 latency of each model, timed round-robin so machine load hits all alike."""
    import onnxruntime as ort

    from embodied_mm.export.ort_policy import session_options

    sessions = {
        k: ort.InferenceSession(str(p), session_options(1), providers=["CPUExecutionProvider"])
        for k, p in models.items()
    }
    one = {k: v[:1] for k, v in feeds.items()}
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():  # warm-up: ORT's first-run planning, allocator
        for _ in range(3):
            s.run(["actions"], one)
    for _ in range(iters):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(["actions"], one)
            times[k].append((time.perf_counter() - t) * 1e3)
    return {k: float(np.percentile(v, 50)) for k, v in times.items()}


def _errors(
    work: Path, tag: str, feeds: dict, reference: np.ndarray, scale: list[float], models: dict
) -> dict[str, dict[str, Any]]:
    """Errors of ``models`` (label → spec) on this CPU and, if QEMU exists, without VNNI."""
    from embodied_mm.export.cpu_kernels import NO_VNNI_CPU, qemu_binary, run_worker

    np.savez(work / f"feeds-{tag}.npz", **feeds)
    np.save(work / f"reference-{tag}.npy", reference)
    spec = {
        "feeds": str(work / f"feeds-{tag}.npz"),
        "reference": str(work / f"reference-{tag}.npy"),
        "scale": scale,
        "models": models,
    }
    (work / f"spec-{tag}.json").write_text(json.dumps(spec))
    args = ["graphs", str(work / f"spec-{tag}.json")]
    out = {"native": run_worker(args, cpu=None)}
    if qemu_binary() is not None:
        out["no_vnni"] = run_worker(args, cpu=NO_VNNI_CPU, timeout_s=7200)
    return out


def study_policy(
    name: str, checkpoint: Path, work: Path, dataset: Path | None, iters: int
) -> list[dict[str, Any]]:
    """One row per scheme (and the x64quantprecision row) for the policy at ``checkpoint``."""
    from embodied_mm.export import calibration
    from embodied_mm.export.onnx_export import (
        STATIC_CALIBRATION_OBSERVATIONS,
        action_scale,
        export_checkpoint,
    )
    from embodied_mm.export.ort_policy import OrtPolicy
    from embodied_mm.export.quantize import SCHEMES, quantize_int8
    from embodied_mm.model.modeling_vla import VLAPolicy

    out = work / name
    export_checkpoint(checkpoint, out)  # fp32, dynamic batch
    fp32_file = out / "model.onnx"
    fp32 = OrtPolicy(out, precision="fp32")
    scale = action_scale(VLAPolicy.from_pretrained(checkpoint, device="cpu"))
    sources = {"random": None, **({"dataset": dataset} if dataset is not None else {})}
    evals, static = {}, {}
    for tag, source in sources.items():
        obs, _ = calibration.observations(fp32.config, EVAL_OBSERVATIONS, source, seed=11)
        feeds = fp32.feeds(obs)
        evals[tag] = (feeds, fp32.run_feeds(feeds))  # (B, K, D) fp32 reference
    cal_source = dataset  # static schemes calibrate on the dataset when there is one
    cal_obs, _ = calibration.observations(
        fp32.config, STATIC_CALIBRATION_OBSERVATIONS, cal_source, seed=2
    )
    static = [fp32.feeds(cal_obs)]
    files = {}
    for scheme in SCHEMES.values():
        files[scheme.name] = out / f"{scheme.name}.onnx"
        quantize_int8(fp32_file, files[scheme.name], scheme.name, static)
    models = {k: {"file": str(p)} for k, p in files.items()}
    models[X64_PRECISION] = {"file": str(files["dynamic"]), "x64_precision": True}
    errors = {
        tag: _errors(out, tag, feeds, ref, scale, models) for tag, (feeds, ref) in evals.items()
    }
    p50 = _latency_ms({"fp32": fp32_file, **files}, evals["random"][0], iters)
    rows = []
    for label in models:
        row: dict[str, Any] = {"policy": name, "scheme": label}
        for tag, by_cpu in errors.items():
            for cpu, errs in by_cpu.items():
                row[f"{tag}/{cpu}"] = errs[label]
        file_key = "dynamic" if label == X64_PRECISION else label
        row["speedup"] = None if label == X64_PRECISION else p50["fp32"] / p50[file_key]
        row["fp32_ms"], row["int8_ms"] = p50["fp32"], p50[file_key]
        rows.append(row)
    return rows


def run(
    recipes: list[str],
    checkpoints: list[Path],
    dataset: Path | None,
    iters: int,
    out: Path | None,
) -> str:
    import os

    import torch

    from embodied_mm.export.cpu_kernels import NO_VNNI_CPU, host_has_vnni, qemu_binary
    from embodied_mm.export.quantize import INT8_TOLERANCE
    from embodied_mm.policies.recipes import make_policy

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        policies = []
        for recipe in recipes:
            torch.manual_seed(0)
            make_policy(recipe, "tiny", device="cpu").save_pretrained(work / f"{recipe}-ckpt")
            policies.append((f"{recipe} tiny", work / f"{recipe}-ckpt"))
        policies += [(str(c), Path(c)) for c in checkpoints]
        for i, (name, ckpt) in enumerate(policies):
            for row in study_policy(f"p{i}", ckpt, work, dataset, iters):
                rows.append({**row, "policy": name})
    native = "this CPU (VNNI)" if host_has_vnni() else "this CPU (no VNNI)"
    cpus = [("native", native)]
    if qemu_binary() is not None:
        cpus.append(("no_vnni", f"QEMU -cpu {NO_VNNI_CPU} (no VNNI)"))
    tags = ["random", *(["dataset"] if dataset is not None else [])]
    cols = [(f"{t}/{c}", f"{t} obs, {label}") for t in tags for c, label in cpus]
    lines = [
        f"`embodied-mm bench int8` (max |int8 - fp32| in normalised action units over "
        f"{EVAL_OBSERVATIONS} observations; tolerance {INT8_TOLERANCE}; speed-up: fp32 p50 / "
        f"int8 p50 at batch 1 over {iters} round-robin calls, one thread, load avg "
        f"{os.getloadavg()[0]:.1f})",
        "",
        "| policy | scheme | " + " | ".join(label for _, label in cols) + " | speed-up |",
        "|---|---|" + "---|" * len(cols) + "---|",
    ]
    for r in rows:
        cells = [_cell(r.get(k)) for k, _ in cols]
        speed = "" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        lines.append(f"| {r['policy']} | {r['scheme']} | " + " | ".join(cells) + f" | {speed} |")
    text = "\n".join(lines)
    if out is not None:
        out.write_text(text + "\n")
    return text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else f"{value:.3f}"
