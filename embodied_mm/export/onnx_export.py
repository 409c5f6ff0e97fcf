"""Export a saved policy to ONNX: the graphs (``model.onnx`` for the chunk and flow heads;
``prefill.onnx``, ``step.onnx``, ``actions.onnx`` for the discrete head), optionally their
``*.int8.onnx`` versions, ``manifest.json`` and ``tokenizer/``.

Exporter: torch's TorchScript-based exporter (``dynamo=False``). The dynamo exporter also
works with transformers 5.x on torch 2.13 but needs the extra ``onnxscript`` package and took
~145 s for the tiny flow policy on this project's 2-core CPU against ~2 s here; both give the
same outputs. The price of tracing: shapes that Python code reads become constants, so the
graph has one dynamic axis (batch) and the instruction is always ``max_text_tokens`` ids,
left-padded (padding is masked, so the result equals the unpadded one).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from embodied_mm.export.graph import (
    GRAPH_HEADS,
    ActionGraph,
    DiscreteActions,
    DiscretePrefill,
    DiscreteStep,
    needs_noise_input,
    observation_names,
)
from embodied_mm.export.manifest import (
    BATCH,
    TOKENIZER_DIR,
    GraphSpec,
    Manifest,
    TensorSpec,
    model_file,
)
from embodied_mm.features import ACTION
from embodied_mm.fsio import sha256_file
from embodied_mm.model.policy import CONFIG_FILE, WEIGHTS_FILE, VLAPolicy

OPSET = 17
QUANTIZE = ("int8",)
PRECISIONS = ("fp32", *QUANTIZE)


def graph_file(graph: str, precision: str) -> str:
    """``model.onnx``, ``model.int8.onnx``, ``step.onnx`` ..."""
    return f"{graph}.onnx" if precision == "fp32" else f"{graph}.{precision}.onnx"


def example_inputs(
    policy: VLAPolicy, batch: int, seed: int = 0, text_tokens: int | None = None
) -> list[torch.Tensor]:
    """Random observation inputs in graph order (images, state, ids, mask[, noise]): the
    export's trace inputs, and fresh inputs for parity checks."""
    cfg = policy.config
    gen = torch.Generator().manual_seed(seed)
    s, length = cfg.image_size, cfg.max_text_tokens
    inputs = [
        torch.randint(0, 256, (batch, s, s, 3), generator=gen, dtype=torch.uint8)
        for _ in cfg.cameras
    ]  # each (B, H, W, 3)
    inputs.append(torch.randn(batch, cfg.state_dim, generator=gen))  # (B, S)
    ids = torch.randint(0, len(policy.tokenizer), (batch, length), generator=gen)  # (B, L)
    mask = torch.ones(batch, length, dtype=torch.long)  # (B, L)
    # Left padding of varying length, as the runtime sends it.
    n = text_tokens if text_tokens is not None else length // 2
    for i in range(batch):
        pad = max(0, length - max(1, n - i))
        mask[i, :pad] = 0
        ids[i, :pad] = policy.pad_id
    inputs += [ids, mask]
    if needs_noise_input(policy):
        inputs.append(torch.randn(batch, cfg.chunk_size, cfg.action_dim, generator=gen))
    return inputs


_DTYPES = {torch.uint8: "uint8", torch.int64: "int64", torch.float32: "float32"}


def _spec(name: str, tensor: torch.Tensor, axes: dict[int, str]) -> TensorSpec:
    shape: list[int | str] = [axes.get(i, int(d)) for i, d in enumerate(tensor.shape)]
    return TensorSpec(name, _DTYPES[tensor.dtype], shape)


def _trace(
    module: torch.nn.Module,
    inputs: list[torch.Tensor],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    axes: dict[str, dict[int, str]],
) -> GraphSpec:
    """Trace ``module`` on ``inputs`` into ``path``; the spec of what was exported."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # nn.MultiheadAttention's inference fast path is one fused op ONNX has no symbol for.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Tracer warnings about Python-side shape checks: those shapes are fixed by design.
            warnings.simplefilter("ignore")
            outputs = module(*inputs)
            torch.onnx.export(
                module,
                tuple(inputs),
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return GraphSpec(
        [_spec(n, x, axes.get(n, {})) for n, x in zip(input_names, inputs, strict=True)],
        [_spec(n, x, axes.get(n, {})) for n, x in zip(output_names, outputs, strict=True)],
    )


def export_graphs(
    policy: VLAPolicy, directory: Path, batch: int | None = None
) -> dict[str, GraphSpec]:
    """Trace ``policy``'s inference path into fp32 ONNX files in ``directory``.

    ``batch=None`` gives a dynamic batch axis; a fixed ``batch`` lets the exporter and
    onnxruntime fold every shape computation away (``nn.MultiheadAttention`` alone traces to
    hundreds of Shape/Gather/Concat nodes per flow step), at the price of that batch size.
    """
    policy = policy.to("cpu").eval()
    kind = policy.config.head.kind
    obs = example_inputs(policy, batch=batch or 2)
    obs_names = observation_names(policy)
    b_axis = {0: BATCH} if batch is None else {}
    batch_axes = {n: dict(b_axis) for n in obs_names}
    if kind in GRAPH_HEADS:
        graph = ActionGraph(policy).eval()
        axes = {**batch_axes, "actions": b_axis}
        path = directory / graph_file("model", "fp32")
        return {"model": _trace(graph, obs, path, obs_names, ["actions"], axes)}
    if kind != "discrete":
        raise ValueError(f"cannot export a {kind!r} policy to ONNX: no graph form for this head")
    prefill = DiscretePrefill(policy).eval()
    step = DiscreteStep(policy).eval()
    names = prefill.output_names()
    axes = {**batch_axes, **{n: b_axis for n in names}}
    specs = {"prefill": _trace(prefill, obs, directory / "prefill.onnx", obs_names, names, axes)}
    with torch.no_grad():
        first, mask, pos, *cache = prefill(*obs)
    # The step's example: the prefill's cache of P tokens and the first bin at position P.
    step_in = [first, torch.cat([mask, torch.ones_like(first)], 1), pos + 1, *cache]
    past, grown = "past", "past_plus_1"
    axes = {
        "bin": b_axis,
        "mask": {**b_axis, 1: grown},
        "pos": b_axis,
        "next_bin": b_axis,
        **{n: {**b_axis, 2: past} for n in step.cache_names("past")},
        **{n: {**b_axis, 2: grown} for n in step.cache_names("present")},
    }
    specs["step"] = _trace(
        step, step_in, directory / "step.onnx", step.input_names(), step.output_names(), axes
    )
    n_bins = policy.head.chunk_size * policy.head.action_dim
    bins = torch.randint(0, policy.head.num_bins, (batch or 2, n_bins))  # (B, K·D)
    specs["actions"] = _trace(
        DiscreteActions(policy).eval(),
        [bins],
        directory / "actions.onnx",
        ["bins"],
        ["actions"],
        {"bins": b_axis, "actions": b_axis},
    )
    return specs


def _max_abs_diff(directory: Path, batch: int = 4) -> float:
    """Largest |int8 - fp32| of the exported actions on random observations (robot units)."""
    from embodied_mm.export.ort_policy import OrtPolicy, random_observation

    fp32, int8 = (OrtPolicy(directory, precision=p) for p in ("fp32", "int8"))
    obs = random_observation(fp32.config, batch, seed=1)
    return float(np.abs(fp32.predict_chunk(obs) - int8.predict_chunk(obs)).max())


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    quantize: str | None = None,
    batch: int | None = None,
) -> Manifest:
    """Export a ``save_pretrained`` directory to ``out`` (created; existing model files are
    replaced). ``quantize="int8"`` also writes the dynamically quantised model and makes it
    the default the runtime loads."""
    import onnx

    if quantize is not None and quantize not in QUANTIZE:
        raise ValueError(f"unknown quantisation {quantize!r}; known: {', '.join(QUANTIZE)}")
    if batch is not None and batch < 1:
        raise ValueError(f"a fixed batch size must be >= 1, got {batch}")
    checkpoint, out = Path(checkpoint), Path(out)
    policy = VLAPolicy.from_pretrained(checkpoint, device="cpu").eval()
    out.mkdir(parents=True, exist_ok=True)
    # Write into a temporary directory first: a failed export leaves no half-written model
    # beside an old manifest.
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmp_dir = Path(tmp)
        graphs = export_graphs(policy, tmp_dir, batch)
        precisions = ["fp32", *([quantize] if quantize else [])]
        for name in graphs:
            onnx.checker.check_model(str(tmp_dir / graph_file(name, "fp32")))
            if quantize == "int8":
                from embodied_mm.export.quantize import quantize_int8

                quantize_int8(
                    tmp_dir / graph_file(name, "fp32"), tmp_dir / graph_file(name, "int8")
                )
        for stale in out.glob("*.onnx"):  # files of an earlier export (other head, int8)
            stale.unlink()
        for f in tmp_dir.glob("*.onnx"):
            f.replace(out / f.name)
    tok_dir = out / TOKENIZER_DIR
    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    policy.tokenizer.save_pretrained(str(tok_dir))

    cfg = policy.config
    bounds = policy.normalizer.bounds(ACTION)
    manifest = Manifest(
        head=cfg.head.kind,
        cameras=list(cfg.cameras),
        image_size=cfg.image_size,
        state_dim=cfg.state_dim,
        action_dim=cfg.action_dim,
        chunk_size=cfg.chunk_size,
        text_len=cfg.max_text_tokens,
        pad_id=policy.pad_id,
        batch=batch,
        graphs=graphs,
        models={p: {g: model_file(out, graph_file(g, p)) for g in graphs} for p in precisions},
        default_precision=quantize or "fp32",
        norm_modes=dict(cfg.norm_modes),
        stats=policy.normalizer.stats,
        action_bounds=None
        if bounds is None
        else {"low": bounds[0].tolist(), "high": bounds[1].tolist()},
        source={
            "checkpoint": str(checkpoint.resolve()),
            "weights_sha256": sha256_file(checkpoint / WEIGHTS_FILE),
            "config_sha256": sha256_file(checkpoint / CONFIG_FILE),
        },
        exporter={
            "name": "torch.onnx (TorchScript)",
            "opset": OPSET,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
        },
    )
    manifest.save(out)
    if quantize == "int8":  # measured on the files as the runtime loads them
        manifest.int8_tolerance = _max_abs_diff(out)
    manifest.save(out)
    return manifest
