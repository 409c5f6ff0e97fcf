"""Run int8 models on the integer kernels of an x86 CPU without VNNI, whatever the host.

onnxruntime picks its u8×s8 GEMM kernel from the CPU's features at start-up: VNNI CPUs
accumulate exactly in int32, AVX2 / AVX-512 CPUs without VNNI go through a saturating int16
(see ``quantize.py``). To test the second path on a VNNI machine, this module runs Python
under QEMU's user-mode emulator with a CPU model that lacks VNNI (``qemu-x86_64 -cpu
Haswell``: AVX2, no AVX-512, no VNNI; the Debian/Ubuntu package is ``qemu-user``), so
onnxruntime really selects and runs those kernels.

:func:`saturation_probe` tells whether a CPU (native or emulated) saturates: one
``MatMulInteger`` whose u8×s8 pairs overflow int16, compared with exact integer arithmetic.

Entry points of the emulated process (``python -m embodied_mm.export.cpu_kernels ...``):
``probe``, ``export`` (load an export's int8 model, report its load-time check, optionally run
observations) and ``graphs`` (errors of several int8 graphs on fixed inputs; the int8 study).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

NO_VNNI_CPU = "Haswell"  # QEMU CPU model: AVX2 and FMA, neither AVX-512 nor (AVX-)VNNI
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
QEMU = "qemu-x86_64"


def host_has_vnni() -> bool:
    """Whether this machine's CPU reports a VNNI extension (Linux ``/proc/cpuinfo``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(f in flags for f in VNNI_FLAGS)


def qemu_binary() -> str | None:
    """Path of QEMU's x86-64 user-mode emulator, or None when it is not installed."""
    return shutil.which(QEMU)


def run_python(
    args: list[str], cpu: str | None = NO_VNNI_CPU, timeout_s: float = 1800
) -> subprocess.CompletedProcess:
    """This interpreter with ``args``, emulating ``cpu`` (None: natively). One intra-op thread:
    emulation is slow and the machine may be shared."""
    command = [sys.executable, *args]
    if cpu is not None:
        qemu = qemu_binary()
        if qemu is None:
            raise RuntimeError(f"{QEMU} is not installed (Debian/Ubuntu package: qemu-user)")
        command = [qemu, "-cpu", cpu, *command]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    if done.returncode != 0:
        where = f"under {QEMU} -cpu {cpu}" if cpu else "natively"
        raise RuntimeError(f"{' '.join(args)} failed {where}:\n{done.stderr[-3000:]}")
    return done


def run_worker(args: list[str], cpu: str | None = NO_VNNI_CPU, timeout_s: float = 1800) -> Any:
    """A worker command of this module (``probe``, ``export``, ``graphs``): its JSON result."""
    done = run_python(["-m", "embodied_mm.export.cpu_kernels", *args], cpu, timeout_s)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _session(model: str | bytes, x64_precision: bool = False) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    if x64_precision:
        # onnxruntime's own remedy: u8×u8 kernels on CPUs whose u8×s8 kernel saturates.
        opts.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def saturation_probe() -> dict[str, int]:
    """One ``MatMulInteger`` of 64 uint8 255s by 64 int8 127s: exactly 64·255·127; a kernel
    that sums u8×s8 pairs in a saturating int16 gives 32·32767 instead."""
    from onnx import TensorProto, helper, numpy_helper

    k = 64
    weights = np.full((k, 8), 127, dtype=np.int8)  # (K, N)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["y"])],
        "saturation_probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 8])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    a = np.full((1, k), 255, dtype=np.uint8)  # (1, K)
    got = _session(model.SerializeToString()).run(None, {"a": a})[0]  # (1, N) int32
    exact = a.astype(np.int64) @ weights.astype(np.int64)
    return {"onnxruntime": int(got[0, 0]), "exact": int(exact[0, 0])}


def _export_worker(export_dir: str, obs_file: str | None, out_file: str | None) -> dict:
    """Load the export's default precision as the runtime does; report the load-time check."""
    from embodied_mm.export.ort_policy import OrtPolicy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = OrtPolicy(export_dir)
    result = {
        "precision": policy.precision,
        "int8_error": policy.int8_error,
        "warnings": [str(w.message) for w in caught],
    }
    if obs_file and out_file:
        with np.load(obs_file) as data:
            obs = {k: data[k] for k in data.files}
        obs["task"] = [str(t) for t in obs["task"]]
        np.save(out_file, policy.predict_chunk(obs))  # (B, K, D)
    return result


def _graphs_worker(spec_file: str) -> dict[str, float | str]:
    """``spec``: {"feeds": npz, "reference": npy (B, K, D), "scale": [D], "models": {label:
    {"file": onnx, "x64_precision": bool}}} → label: max error in normalised action units
    (or why the session could not be built)."""
    spec = json.loads(Path(spec_file).read_text())
    with np.load(spec["feeds"]) as data:
        feeds = {k: data[k] for k in data.files}
    reference = np.load(spec["reference"])
    scale = np.asarray(spec["scale"], dtype=np.float32)
    errors: dict[str, float | str] = {}
    for label, model in spec["models"].items():
        try:
            session = _session(model["file"], model.get("x64_precision", False))
        except Exception as err:  # onnxruntime raises its own Fail type; record, go on
            # onnxruntime's message ends "... : FAIL : <where> <what>"; keep the last part.
            errors[label] = f"fails to load ({str(err).strip().split(' : ')[-1][-120:]})"
            continue
        actions = session.run(["actions"], feeds)[0]  # (B, K, D)
        errors[label] = float((np.abs(actions - reference) / scale).max())
    return errors


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "probe":
        result: Any = saturation_probe()
    elif command == "export":
        result = _export_worker(args[0], *(args[1:3] if len(args) >= 3 else (None, None)))
    elif command == "graphs":
        result = _graphs_worker(args[0])
    else:
        raise SystemExit(f"unknown command {command!r}; known: probe, export, graphs")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
