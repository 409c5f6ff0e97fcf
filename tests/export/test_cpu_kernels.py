"""int8 on the integer kernels of an x86 CPU without VNNI, run for real under QEMU's user-mode
emulator (``-cpu Haswell``), whatever the host CPU: onnxruntime selects its kernels from the
emulated CPU's features. Slow (emulation); skipped only where qemu-x86_64 is not installed, and
never skipped in CI."""

import os

import numpy as np
import pytest

from embodied_mm.export.cpu_kernels import NO_VNNI_CPU, qemu_binary, run_worker
from embodied_mm.export.manifest import Manifest
from embodied_mm.export.ort_policy import OrtPolicy
from embodied_mm.export.quantize import INT8_TOLERANCE
from tests.export.conftest import random_obs

# In CI (CI=true) a missing emulator is a failure, not a skip: `make test` installs it there.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        qemu_binary() is None and not os.environ.get("CI"),
        reason="qemu-x86_64 is not installed (Debian/Ubuntu: apt-get install qemu-user; "
        "`make test` installs it when run as root): the non-VNNI int8 kernels cannot run here",
    ),
]


def test_emulated_cpu_runs_the_saturating_kernel():
    """The premise of the tests below: under QEMU the u8×s8 kernel saturates int16 pairs."""
    probe = run_worker(["probe"], cpu=NO_VNNI_CPU)
    assert probe["exact"] == 64 * 255 * 127
    assert probe["onnxruntime"] == 32 * 32767, probe  # 32 pairs, each clipped to int16 max


def _int8_without_vnni(export_dir, policy_cfg, tmp_path):
    """Load ``export_dir`` under QEMU as the runtime does; its actions on held-out
    observations and what the load-time check reported."""
    obs = random_obs(policy_cfg, 4, seed=11)  # the observations of the native int8 test
    np.savez(tmp_path / "obs.npz", **obs)
    args = ["export", str(export_dir), str(tmp_path / "obs.npz"), str(tmp_path / "int8.npy")]
    report = run_worker(args, cpu=NO_VNNI_CPU)
    assert report["precision"] == "int8"
    return obs, np.load(tmp_path / "int8.npy"), report  # (B, K, D)


def test_int8_within_documented_tolerance_without_vnni(exported, tmp_path):
    if exported.recipe == "vla-discrete":
        pytest.skip("the int8 tolerance does not apply to the discrete head (docs/export.md)")
    obs, int8, report = _int8_without_vnni(exported.export, exported.policy.config, tmp_path)
    fp32 = OrtPolicy(exported.export, precision="fp32").predict_chunk(obs)  # natively
    m = Manifest.load(exported.export)
    err = np.abs(int8 - fp32) / np.array(m.int8_check.scale)  # normalised action units
    assert 0 < err.max() <= INT8_TOLERANCE, err.max()
    assert report["int8_error"] <= INT8_TOLERANCE and report["warnings"] == [], report


def test_saturating_scheme_is_caught_by_the_load_check(exported, tmp_path):
    """The scheme used before (per-tensor int8 weights) saturates without VNNI; loading such
    an export there warns with the measured error."""
    if exported.recipe != "vla-chunk":
        pytest.skip("one recipe shows it (the flow head is ~3x slower under emulation)")
    from embodied_mm.export.onnx_export import export_checkpoint

    out = tmp_path / "old-scheme"
    export_checkpoint(exported.checkpoint, out, quantize="int8", int8_scheme="dynamic")
    obs, int8, report = _int8_without_vnni(out, exported.policy.config, tmp_path)
    fp32 = OrtPolicy(out, precision="fp32").predict_chunk(obs)
    err = np.abs(int8 - fp32) / np.array(Manifest.load(out).int8_check.scale)
    assert err.max() > INT8_TOLERANCE  # the failure this section fixes, reproduced
    assert report["int8_error"] > INT8_TOLERANCE
    (message,) = report["warnings"]
    assert f"off by {report['int8_error']:.3g}" in message and "tolerance 0.1" in message
