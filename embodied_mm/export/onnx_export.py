"""Export a saved policy to ONNX: ``model.onnx`` (fp32), optionally ``model.int8.onnx``,
``manifest.json`` and ``tokenizer/``.

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

from embodied_mm.export.graph import GRAPH_HEADS, ActionGraph
from embodied_mm.export.manifest import (
    BATCH,
    TOKENIZER_DIR,
    Manifest,
    TensorSpec,
    model_file,
    sha256_file,
)
from embodied_mm.features import ACTION
from embodied_mm.model.policy import CONFIG_FILE, WEIGHTS_FILE, VLAPolicy

OPSET = 17
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
QUANTIZE = ("int8",)

# Why a head has no export; the CLI prints it.
UNSUPPORTED = {
    "discrete": (
        "the discrete head decodes K·D action tokens one at a time with the backbone's KV "
        "cache (a transformers Cache object that the TorchScript exporter cannot carry between "
        "graph calls); a prefill + KV-step graph pair is not implemented yet. Export a "
        "'chunk' or 'flow' policy, or serve this one with the PyTorch backend"
    ),
}


def example_inputs(
    policy: VLAPolicy, batch: int, seed: int = 0, text_tokens: int | None = None
) -> list[torch.Tensor]:
    """Random inputs in :class:`ActionGraph` order (images, state, ids, mask[, noise]):
    the export's trace inputs, and fresh inputs for parity checks."""
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
    if ActionGraph(policy).noise_input:
        inputs.append(torch.randn(batch, cfg.chunk_size, cfg.action_dim, generator=gen))
    return inputs


def _specs(policy: VLAPolicy, graph: ActionGraph) -> tuple[list[TensorSpec], list[TensorSpec]]:
    cfg = policy.config
    s = cfg.image_size
    shapes: dict[str, tuple[str, list[int | str]]] = {
        f"image_{c}": ("uint8", [BATCH, s, s, 3]) for c in cfg.cameras
    }
    shapes["state"] = ("float32", [BATCH, cfg.state_dim])
    shapes["text_ids"] = ("int64", [BATCH, cfg.max_text_tokens])
    shapes["text_mask"] = ("int64", [BATCH, cfg.max_text_tokens])
    shapes["noise"] = ("float32", [BATCH, cfg.chunk_size, cfg.action_dim])
    inputs = [TensorSpec(n, *shapes[n]) for n in graph.input_names()]
    outputs = [TensorSpec("actions", "float32", [BATCH, cfg.chunk_size, cfg.action_dim])]
    return inputs, outputs


def export_graph(policy: VLAPolicy, path: Path) -> ActionGraph:
    """Trace ``policy``'s inference path into the ONNX file ``path``."""
    kind = policy.config.head.kind
    if kind not in GRAPH_HEADS:
        raise ValueError(f"cannot export a {kind!r} policy to ONNX: {UNSUPPORTED[kind]}")
    policy = policy.to("cpu").eval()
    graph = ActionGraph(policy).eval()
    names = graph.input_names()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # nn.MultiheadAttention's inference fast path is one fused op ONNX has no symbol for.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Tracer warnings about Python-side shape checks: those shapes are fixed by design.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                tuple(example_inputs(policy, batch=2)),
                str(path),
                input_names=names,
                output_names=["actions"],
                dynamic_axes={n: {0: BATCH} for n in [*names, "actions"]},
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return graph


def _max_abs_diff(a: Path, b: Path, policy: VLAPolicy, batch: int = 4) -> float:
    """Largest |a - b| of two models' actions on random inputs (robot units)."""
    import onnxruntime as ort

    graph = ActionGraph(policy)
    feeds = {
        n: x.numpy()
        for n, x in zip(graph.input_names(), example_inputs(policy, batch, seed=1), strict=True)
    }
    outs = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        for p in (a, b)
    ]
    return float(np.abs(outs[0] - outs[1]).max())


def export_checkpoint(
    checkpoint: str | Path, out: str | Path, quantize: str | None = None
) -> Manifest:
    """Export a ``save_pretrained`` directory to ``out`` (created; existing model files are
    replaced). ``quantize="int8"`` also writes the dynamically quantised model and makes it
    the default the runtime loads."""
    import onnx

    if quantize is not None and quantize not in QUANTIZE:
        raise ValueError(f"unknown quantisation {quantize!r}; known: {', '.join(QUANTIZE)}")
    checkpoint, out = Path(checkpoint), Path(out)
    policy = VLAPolicy.from_pretrained(checkpoint, device="cpu").eval()
    out.mkdir(parents=True, exist_ok=True)
    # Write into a temporary directory first: a failed export leaves no half-written model
    # beside an old manifest.
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmp_dir = Path(tmp)
        graph = export_graph(policy, tmp_dir / FP32_FILE)
        onnx.checker.check_model(str(tmp_dir / FP32_FILE))
        tolerance = None
        if quantize == "int8":
            from embodied_mm.export.quantize import quantize_int8

            quantize_int8(tmp_dir / FP32_FILE, tmp_dir / INT8_FILE)
            tolerance = _max_abs_diff(tmp_dir / FP32_FILE, tmp_dir / INT8_FILE, policy)
        for name in (FP32_FILE, INT8_FILE):
            if (tmp_dir / name).exists():
                (tmp_dir / name).replace(out / name)
            elif (out / name).exists():
                (out / name).unlink()  # an int8 file from an earlier export is stale now
    tok_dir = out / TOKENIZER_DIR
    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    policy.tokenizer.save_pretrained(str(tok_dir))

    cfg = policy.config
    inputs, outputs = _specs(policy, graph)
    models = {"fp32": model_file(out, FP32_FILE)}
    if quantize == "int8":
        models["int8"] = model_file(out, INT8_FILE)
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
        inputs=inputs,
        outputs=outputs,
        models=models,
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
        int8_tolerance=tolerance,
    )
    manifest.save(out)
    return manifest
