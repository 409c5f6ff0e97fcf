"""The int8 export's calibration batch and the load-time check of ``OrtPolicy``."""

import json
import shutil
import warnings

import cv2
import numpy as np
import pytest

from embodied_mm.export.manifest import Manifest, ManifestError
from embodied_mm.export.ort_policy import REFERENCE, Int8AccuracyWarning, OrtPolicy
from embodied_mm.export.quantize import DEFAULT_SCHEME, INT8_TOLERANCE
from embodied_mm.fsio import sha256_file
from tests.export.conftest import export_with_cli


def _graph_head(exported):
    if exported.recipe == "vla-discrete":
        pytest.skip("the int8 tolerance does not apply to the discrete head (docs/export.md)")


def test_calibration_batch_is_listed_with_its_hash_and_fp32_actions(exported):
    _graph_head(exported)
    m = Manifest.load(exported.export)
    check = m.int8_check
    assert check.tolerance == INT8_TOLERANCE and check.scheme == DEFAULT_SCHEME
    assert 0 < check.measured <= INT8_TOLERANCE
    path = exported.export / check.calibration.file
    assert check.calibration.sha256 == sha256_file(path)
    low, high = (np.array(m.stats["action"][k]) for k in ("q01", "q99"))
    np.testing.assert_allclose(check.scale, (high - low) / 2, rtol=1e-5)
    fp32 = OrtPolicy(exported.export, precision="fp32")
    with np.load(path) as data:
        feeds = {k: data[k] for k in data.files if k != REFERENCE}
        reference = data[REFERENCE]
    assert check.observations == len(reference) == 4
    np.testing.assert_allclose(fp32.run_feeds(feeds), reference, rtol=0, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Int8AccuracyWarning)  # within tolerance: no warning
        int8 = OrtPolicy(exported.export)
    assert int8.int8_error == pytest.approx(check.measured, abs=1e-6)


def _with_reference(src, dst, shift: float):
    """A copy of the export whose stored fp32 actions are moved by ``shift`` normalised units
    in action dimension 0 (manifest hash updated, so only the check can notice)."""
    shutil.copytree(src, dst)
    data = json.loads((dst / "manifest.json").read_text())
    check = data["int8_check"]
    path = dst / check["calibration"]["file"]
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[REFERENCE][..., 0] += shift * check["scale"][0]
    np.savez(path, **arrays)
    check["calibration"]["sha256"] = sha256_file(path)
    check["calibration"]["bytes"] = path.stat().st_size
    (dst / "manifest.json").write_text(json.dumps(data))
    return dst


def test_over_tolerance_warns_naming_error_and_tolerance(exported, tmp_path):
    _graph_head(exported)
    d = _with_reference(exported.export, tmp_path / "off", shift=0.5)
    with pytest.warns(Int8AccuracyWarning) as caught:
        policy = OrtPolicy(d)
    assert 0.4 < policy.int8_error < 0.6
    msg = str(caught[0].message)
    assert f"off by {policy.int8_error:.3g}" in msg and "tolerance 0.1" in msg
    with warnings.catch_warnings():
        warnings.simplefilter("error", Int8AccuracyWarning)
        OrtPolicy(d, precision="fp32")  # fp32 is not checked


def test_tampered_or_missing_calibration_fails_clearly(exported_int8_chunk, tmp_path):
    d = tmp_path / "tampered"
    shutil.copytree(exported_int8_chunk, d)
    name = Manifest.load(d).int8_check.calibration.file
    with np.load(d / name) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[REFERENCE] += 1.0
    np.savez(d / name, **arrays)
    with pytest.raises(ManifestError, match=r"calibration batch .* does not match the manifest"):
        OrtPolicy(d)
    (d / name).unlink()
    with pytest.raises(ManifestError, match=r"calibration batch .* named by the manifest is miss"):
        OrtPolicy(d)


def test_export_without_calibration_batch_warns(exported_int8_chunk, tmp_path):
    """An int8 export from before the calibration batch: the check cannot run, and says so."""
    d = tmp_path / "legacy"
    shutil.copytree(exported_int8_chunk, d)
    data = json.loads((d / "manifest.json").read_text())
    data.pop("int8_check")
    data["int8_tolerance"] = 0.03  # what such manifests recorded instead
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.warns(Int8AccuracyWarning, match="no calibration batch"):
        policy = OrtPolicy(d)
    assert policy.int8_error is None


@pytest.fixture(scope="module")
def exported_int8_chunk(exported_chunk, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8-chunk") / "onnx"
    export_with_cli(exported_chunk.checkpoint, out, "--quantize", "int8")
    return out


def test_calibration_batch_from_a_dataset(exported_chunk, tmp_path):
    """Frames of a real dataset (written by the writer, read back from its mp4s), resized to
    the policy's image size, become the calibration batch."""
    from embodied_mm.data import synthetic
    from embodied_mm.data.lerobot_format import build_features
    from embodied_mm.data.torch_dataset import LeRobotWindowDataset
    from embodied_mm.data.writer import DatasetWriter

    root, hw = tmp_path / "ds", (64, 64)
    features = build_features(
        state_dim=15, action_dim=7, cameras={"front": hw, "wrist": hw}, fps=10, codec="h264"
    )
    with DatasetWriter.create(root, features, 10, robot_type="synthetic") as writer:
        for i in range(2):
            writer.add_episode(synthetic.synthetic_episode(6, seed=i, task="push", hw=hw))
    out = tmp_path / "onnx"
    printed = export_with_cli(
        exported_chunk.checkpoint, out, "--quantize", "int8", "--calibration-dataset", str(root)
    )
    check = Manifest.load(out).int8_check
    assert check.source == f"dataset {root}" and check.measured <= INT8_TOLERANCE
    assert f"max error {check.measured:.3g} normalised action units, within the" in printed
    data = LeRobotWindowDataset(root)
    decoded = [
        cv2.resize(
            np.round(data[i]["observation.images.front"].numpy().transpose(1, 2, 0) * 255).astype(
                np.uint8
            ),
            (128, 128),
            interpolation=cv2.INTER_AREA,
        )
        for i in range(len(data))
    ]  # each (128, 128, 3)
    with np.load(out / check.calibration.file) as z:
        stored = z["image_front"]  # (4, 128, 128, 3)
    assert stored.shape == (4, 128, 128, 3)
    assert all(any(np.array_equal(s, f) for f in decoded) for s in stored)


def test_calibration_dataset_errors_name_the_problem(exported_chunk, tmp_path):
    from typer.testing import CliRunner

    from embodied_mm.cli.main import app

    args = ["export", "--checkpoint", str(exported_chunk.checkpoint), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "--calibration-dataset", str(tmp_path)])
    assert result.exit_code == 2 and "for int8 exports: add --quantize int8" in result.output
    result = CliRunner().invoke(
        app, [*args, "--quantize", "int8", "--calibration-dataset", str(tmp_path)]
    )
    assert result.exit_code == 2 and str(tmp_path) in result.output  # not a dataset
