"""ONNX export: parity with PyTorch (fp32, int8), the manifest, and what cannot be exported."""

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.export.graph import ActionGraph, DiscreteStep
from embodied_mm.export.manifest import Manifest, ManifestError
from embodied_mm.export.onnx_export import example_inputs
from embodied_mm.export.ort_policy import OrtPolicy
from embodied_mm.export.quantize import INT8_TOLERANCE
from embodied_mm.fsio import sha256_file
from tests.export.conftest import random_obs, torch_predict


@pytest.mark.parametrize("batch", [1, 3])
def test_fp32_matches_pytorch_predict_chunk(exported, batch):
    """The whole API path (tokeniser included) on fresh observations, batch 1 (the control
    loop, no padding) and 3 (instructions of different lengths, left padding)."""
    ort_policy = OrtPolicy(exported.export, precision="fp32")
    obs = random_obs(exported.policy.config, batch, seed=100 + batch)
    ours = ort_policy.predict_chunk(obs)
    ref = torch_predict(exported.policy, obs)
    assert ours.shape == ref.shape == (batch, 8, 7) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)
    # Some entries must be strictly inside the bounds, or the clamp would hide any mismatch.
    low, high = (np.array(exported.policy.normalizer.stats["action"][k]) for k in ("q01", "q99"))
    assert np.mean((ref > low + 1e-3) & (ref < high - 1e-3)) > 0.3


FP32_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"  # graph of the chunk and flow heads


def test_graph_matches_torch_on_random_token_ids(exported):
    """Raw graph inputs (any ids, padding of every length) the tokeniser would not produce."""
    if exported.recipe == "vla-discrete":
        pytest.skip("the discrete graphs are checked by the step-graph test below")
    graph = ActionGraph(exported.policy).eval()
    inputs = example_inputs(exported.policy, batch=4, seed=7, text_tokens=20)
    session = ort.InferenceSession(str(exported.export / FP32_FILE))
    feeds = {n: x.numpy() for n, x in zip(graph.input_names(), inputs, strict=True)}
    with torch.no_grad():
        ref = graph(*inputs).numpy()
    np.testing.assert_allclose(session.run(None, feeds)[0], ref, rtol=0, atol=1e-4)


def test_discrete_step_graph_matches_torch_at_other_cache_lengths(exported):
    """The KV-cache step graph on cache lengths and padding it was not traced with."""
    if exported.recipe != "vla-discrete":
        pytest.skip("discrete head only")
    step = DiscreteStep(exported.policy).eval()
    session = ort.InferenceSession(str(exported.export / "step.onnx"))
    gen = torch.Generator().manual_seed(3)
    for batch, past in [(1, 5), (3, 90)]:
        k = session.get_inputs()[3].shape  # (batch, kv_heads, past, head_dim)
        cache = [
            torch.randn(batch, k[1], past, k[3], generator=gen) for _ in range(2 * step.n_layers)
        ]
        mask = torch.ones(batch, past + 1, dtype=torch.long)
        mask[-1, :2] = 0  # the last sample's instruction was padded
        bin_ = torch.randint(0, 256, (batch, 1), generator=gen)
        pos = mask.sum(1, keepdim=True) - 1
        inputs = [bin_, mask, pos, *cache]
        with torch.no_grad():
            ref = step(*inputs)
        out = session.run(
            None, dict(zip(step.input_names(), [x.numpy() for x in inputs], strict=True))
        )
        np.testing.assert_array_equal(out[0], ref[0].numpy())  # the next bin
        for o, r in zip(out[1:], ref[1:], strict=True):
            assert o.shape == (batch, k[1], past + 1, k[3])
            np.testing.assert_allclose(o, r.numpy(), rtol=0, atol=1e-5)


def test_int8_within_documented_tolerance(exported):
    m = Manifest.load(exported.export)
    assert m.default_precision == "int8"
    low, high = (np.array(m.stats["action"][k]) for k in ("q01", "q99"))
    half_range = (high - low) / 2
    obs = random_obs(exported.policy.config, 4, seed=11)
    fp32 = OrtPolicy(exported.export, precision="fp32").predict_chunk(obs)
    int8 = OrtPolicy(exported.export).predict_chunk(obs)  # the default precision
    # The export measured and recorded its own error (chunk and flow heads).
    assert (m.int8_check is None) == (exported.recipe == "vla-discrete")
    assert m.total_bytes("int8") < 0.7 * m.total_bytes("fp32")
    if exported.recipe == "vla-discrete":
        # Greedy bins of near-tied logits flip under int8 (see docs/export.md): only check
        # that every action is still a bin centre inside the bounds.
        bins = (int8 - low) / (high - low) * 256 - 0.5
        np.testing.assert_allclose(bins, np.round(bins), atol=1e-3)
        assert ((int8 >= low) & (int8 <= high)).all()
        return
    err = np.abs(int8 - fp32) / half_range  # normalised action units
    assert 0 < err.max() <= INT8_TOLERANCE, err.max()  # 0 would mean nothing was quantised


def test_manifest_records_interface_stats_and_source(exported):
    m = Manifest.load(exported.export)
    cfg = exported.policy.config
    discrete = exported.recipe == "vla-discrete"
    assert sorted(m.graphs) == (["actions", "prefill", "step"] if discrete else ["model"])
    first = m.graphs["prefill" if discrete else "model"]
    last = m.graphs["actions" if discrete else "model"]
    names = [s.name for s in first.inputs]
    assert names == ["image_front", "image_wrist", "state", "text_ids", "text_mask"]
    shapes = {s.name: (s.dtype, s.shape) for s in first.inputs + last.outputs}
    assert shapes["image_front"] == ("uint8", ["batch", 128, 128, 3])
    assert shapes["state"] == ("float32", ["batch", cfg.state_dim])
    assert shapes["text_ids"] == ("int64", ["batch", cfg.max_text_tokens])
    assert shapes["actions"] == ("float32", ["batch", cfg.chunk_size, cfg.action_dim])
    if discrete:
        past = {s.name: s.shape for s in m.graphs["step"].inputs}["past_key_0"]
        assert past[0] == "batch" and past[2] == "past"
    assert m.stats == exported.policy.normalizer.stats
    assert m.action_bounds["low"] == pytest.approx(m.stats["action"]["q01"])
    assert m.source["weights_sha256"] == sha256_file(exported.checkpoint / "model.safetensors")
    for entry in m.models["fp32"].values():
        assert entry.sha256 == sha256_file(exported.export / entry.file)
    assert (exported.export / "tokenizer" / "tokenizer.json").is_file()
    assert m.head == exported.recipe.removeprefix("vla-")


def test_tokenizer_without_torch_matches_the_policy(exported):
    ort_policy = OrtPolicy(exported.export, precision="fp32")
    tasks = ["pick up the red cube", "", "x " * 50]  # normal, empty, longer than the limit
    ids, mask = ort_policy.encode_tasks(tasks)
    length = exported.policy.config.max_text_tokens
    assert ids.shape == mask.shape == (3, length)  # the export pads to its fixed length
    for i, task in enumerate(tasks):  # the transformers tokenizer the policy trained with
        ref = exported.policy.tokenizer(task, add_special_tokens=False)["input_ids"][:length]
        n = len(ref)
        np.testing.assert_array_equal(ids[i, length - n :], ref)  # left-padded
        assert mask[i].sum() == n and (n == 0 or mask[i, length - n :].all())


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_model_from_another_export_fails_clearly(exported, exported_chunk, tmp_path):
    d = _copy(exported.export, tmp_path / "mixed")
    target = next(iter(Manifest.load(d).models["fp32"].values())).file
    shutil.copy(exported_chunk.export / FP32_FILE, d / target)
    with pytest.raises(ManifestError, match=rf"{target} does not match the manifest \(sha256"):
        OrtPolicy(d, precision="fp32")


def test_manifest_describing_other_inputs_fails_clearly(exported, tmp_path):
    d = _copy(exported.export, tmp_path / "edited")
    data = json.loads((d / "manifest.json").read_text())
    graph = "prefill" if exported.recipe == "vla-discrete" else "model"
    for spec in data["graphs"][graph]["inputs"]:
        if spec["name"] == "state":
            spec["shape"] = ["batch", 9]
        if spec["name"] == "image_wrist":
            spec["name"] = "image_side"
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError) as err:
        OrtPolicy(d, precision="fp32")
    msg = str(err.value)
    assert "input 'state' has shape" in msg and "model has no input 'image_side'" in msg
    assert "manifest lacks model input 'image_wrist'" in msg


def test_missing_or_malformed_manifest_and_unknown_precision(exported, tmp_path):
    with pytest.raises(ManifestError, match=r"not an ONNX export: manifest\.json is missing"):
        OrtPolicy(exported.checkpoint)  # a PyTorch checkpoint is not an export
    d = _copy(exported.export, tmp_path / "bad")
    (d / "manifest.json").write_text('{"format": "embodied-mm-onnx", "version": 1}')
    with pytest.raises(ManifestError, match="malformed manifest"):
        OrtPolicy(d)
    with pytest.raises(ManifestError, match=r"no 'fp16' model; exported: \['fp32', 'int8'\]"):
        OrtPolicy(exported.export, precision="fp16")


def test_a_missing_or_broken_tokenizer_names_the_file(exported_chunk, tmp_path):
    d = _copy(exported_chunk.export, tmp_path / "broken")
    (d / "tokenizer" / "tokenizer.json").write_text('{"model": ')
    broken = r"cannot load the export's tokenizer .*tokenizer\.json \("
    with pytest.raises(ManifestError, match=broken):
        OrtPolicy(d)
    (d / "tokenizer" / "tokenizer.json").unlink()
    with pytest.raises(ManifestError, match=r"the export's tokenizer .*tokenizer\.json is missing"):
        OrtPolicy(d)


def test_bad_observation_names_the_problem(exported_chunk):
    ort_policy = OrtPolicy(exported_chunk.export)
    obs = random_obs(exported_chunk.policy.config, 1, seed=0)
    obs["observation.images.front"] = obs["observation.images.front"][:, :64, :64]
    with pytest.raises(ValueError, match=r"observation.images.front must be uint8 \(1, 128, 128"):
        ort_policy.predict_chunk(obs)
    with pytest.raises(NotImplementedError, match="plan text is not exported"):
        ort_policy.generate_plan(obs)


def test_export_cli_errors_name_the_problem(exported_chunk, tmp_path):
    runner = CliRunner()
    ckpt, out = str(exported_chunk.checkpoint), str(tmp_path / "o")
    result = runner.invoke(
        app, ["export", "--checkpoint", ckpt, "--out", out, "--format", "tflite"]
    )
    assert result.exit_code == 2 and "unknown format 'tflite'; known: onnx" in result.output
    result = runner.invoke(
        app, ["export", "--checkpoint", ckpt, "--out", out, "--quantize", "int4"]
    )
    assert result.exit_code == 2 and "unknown quantisation 'int4'; known: int8" in result.output
    result = runner.invoke(app, ["export", "--checkpoint", str(tmp_path), "--out", out])
    assert result.exit_code == 2 and "cannot read policy config" in result.output


def test_reexport_without_quantize_removes_stale_int8(exported_chunk, tmp_path):
    from tests.export.conftest import export_with_cli

    d = _copy(exported_chunk.export, tmp_path / "again")
    (d / INT8_FILE).write_bytes(b"stale")
    export_with_cli(exported_chunk.checkpoint, d)
    assert not (d / INT8_FILE).exists()
    assert sorted(Manifest.load(d).models) == ["fp32"]


@pytest.mark.slow
def test_unseeded_flow_takes_noise_as_input(tmp_path):
    from embodied_mm.policies import make_policy
    from tests.export.conftest import export_with_cli

    policy = make_policy("vla-flow", size="tiny", head={"noise_seed": None}, device="cpu").eval()
    policy.save_pretrained(tmp_path / "ckpt")
    export_with_cli(tmp_path / "ckpt", tmp_path / "onnx")
    graph = ActionGraph(policy).eval()
    assert graph.input_names()[-1] == "noise"
    inputs = example_inputs(policy, batch=2, seed=3)
    session = ort.InferenceSession(str(tmp_path / "onnx" / FP32_FILE))
    with torch.no_grad():
        ref = graph(*inputs).numpy()
    feeds = {n: x.numpy() for n, x in zip(graph.input_names(), inputs, strict=True)}
    np.testing.assert_allclose(session.run(None, feeds)[0], ref, rtol=0, atol=1e-4)
    # The runtime draws fresh noise each call: two calls on one observation differ.
    ort_policy = OrtPolicy(tmp_path / "onnx")
    obs = random_obs(policy.config, 1, seed=0)
    assert not np.allclose(ort_policy.predict_chunk(obs), ort_policy.predict_chunk(obs))


def test_fixed_batch_export_runs_any_batch_in_groups(exported_chunk, tmp_path):
    from tests.export.conftest import export_with_cli

    export_with_cli(exported_chunk.checkpoint, tmp_path / "b1", "--batch", "1")
    m = Manifest.load(tmp_path / "b1")
    assert m.batch == 1 and m.graphs["model"].inputs[0].shape == [1, 128, 128, 3]
    obs = random_obs(exported_chunk.policy.config, 3, seed=21)
    ours = OrtPolicy(tmp_path / "b1").predict_chunk(obs)  # three runs of batch 1
    np.testing.assert_allclose(ours, torch_predict(exported_chunk.policy, obs), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("keypoints", "film_text", "goal_input"),
    [(0, "mean", False), (8, "mean", False), (8, "attention", False), (8, "attention", True)],
)
def test_film_conv_tower_exports_with_parity(tmp_path, keypoints, film_text, goal_input):
    """The instruction-conditioned ResNet tower, with the grid or keypoint readout (and the
    goal head, as the shipped default has), reading the instruction as a mean or through
    self-attention, through ONNX; with ``goal_input`` the goal head's waypoint token is part
    of the exported prefix."""
    from embodied_mm.policies import make_policy
    from tests.export.conftest import export_with_cli

    torch.manual_seed(0)
    vision = {"family": "resnet", "image_size": 64, "hidden_size": 32, "num_layers": 2,
              "keypoints": keypoints}  # fmt: skip
    policy = make_policy(
        "vla-chunk", vision={**vision, "film": True, "film_text": film_text, "shift_augment": 4},
        device="cpu",
        goal_loss_weight=0.5 if keypoints else 0.0,  # training-only unless goal_input
        goal_input=goal_input, goal_waypoints=["phase_end", "final"],
    ).eval()  # fmt: skip
    for layer in policy.vision.towers[0].film.out:  # non-zero FiLM, so the text matters
        layer.weight.data.normal_(0.0, 0.5)
    policy.save_pretrained(tmp_path / "ckpt")
    export_with_cli(tmp_path / "ckpt", tmp_path / "onnx")
    obs = random_obs(policy.config, 3, seed=5)
    ours = OrtPolicy(tmp_path / "onnx").predict_chunk(obs)
    np.testing.assert_allclose(ours, torch_predict(policy, obs), rtol=0, atol=1e-4)
