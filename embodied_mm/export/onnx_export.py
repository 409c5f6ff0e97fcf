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

from embodied_mm.errors import UsageError
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
    MANIFEST_FILE,
    TOKENIZER_DIR,
    GraphSpec,
    Int8Check,
    Manifest,
    TensorSpec,
    model_file,
)
from embodied_mm.export.quantize import DEFAULT_SCHEME
from embodied_mm.features import ACTION
from embodied_mm.fsio import sha256_file
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.model.pretrained import CONFIG_FILE, WEIGHTS_FILE
from embodied_mm.model.vlm_families import VLM_FAMILIES
from embodied_mm.processor.core import PROCESSOR_FILE
from embodied_mm.processor.tokenize import TokenizeTask
from embodied_mm.processor.vlm_prompt import VLMPrompt

OPSET = 17
QUANTIZE = ("int8",)
PRECISIONS = ("fp32", *QUANTIZE)
CALIBRATION_FILE = "calibration.npz"  # the int8 check's observations and fp32 actions
CHECK_OBSERVATIONS = 4  # calibration batch stored in the export (small: it runs on each load)
STATIC_CALIBRATION_OBSERVATIONS = 32  # a static scheme's activation-range calibration


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
    s, length = cfg.image_size, text_length(policy)
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
    tokenize = policy.processor.step(TokenizeTask)
    if isinstance(tokenize, VLMPrompt):  # ids in the VLM's prompt, its image tokens in place
        ids, mask = _prompt_ids(tokenize, batch, n, gen, len(policy.tokenizer))
    inputs += [ids, mask]
    if needs_noise_input(policy):
        inputs.append(torch.randn(batch, cfg.chunk_size, cfg.action_dim, generator=gen))
    return inputs


# VLM families whose image path the TorchScript trace cannot hold, and why.
VLM_NOT_EXPORTABLE = {
    family: "its vision embeddings bucketize patch coordinates into position ids, which "
    "the exporter writes as a float index (an invalid graph)"
    for family in ("smolvlm", "idefics3")
}
# ... and those it holds only for the batch size it traced.
VLM_FIXED_BATCH = {
    family: "its vision tower splits attention per image by sizes computed in Python, "
    "which the trace fixes to the example's image count"
    for family in ("qwen2_vl", "qwen2_5_vl")
}


def check_vlm_export(family: str, batch: int | None) -> None:
    """A one-line error where a VLM family's graph cannot be exported (with ``batch``)."""
    if family in VLM_NOT_EXPORTABLE:
        exportable = sorted(
            f for f in VLM_FAMILIES.names() if f not in VLM_NOT_EXPORTABLE
        )  # fmt: skip
        raise UsageError(
            f"cannot export a {family!r} VLM policy to ONNX: {VLM_NOT_EXPORTABLE[family]}; "
            f"VLM families that export: {', '.join(exportable)}"
        )
    if family in VLM_FIXED_BATCH and batch is None:
        raise UsageError(
            f"a {family!r} VLM policy exports only with a fixed batch size (--batch N): "
            f"{VLM_FIXED_BATCH[family]}"
        )


def text_length(policy: VLAPolicy) -> int:
    """The graph's fixed instruction length: the longest ids the pipeline's tokenisation
    gives (a VLM's prompt format around ``max_text_tokens`` instruction ids)."""
    return policy.processor.step(TokenizeTask).max_length


def _prompt_ids(
    prompt: VLMPrompt, batch: int, n: int, gen: torch.Generator, vocab: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids (B, L) and mask (B, L) around random instructions of
    ``n - i`` tokens (sample i)."""
    prompt.fixed_length = prompt.max_length
    try:
        rows = []
        for i in range(batch):
            words = torch.randint(0, vocab, (max(1, min(n - i, prompt.params.max_tokens)),),
                                  generator=gen)  # fmt: skip
            rows.append(" ".join(str(int(w)) for w in words))
        prompt.reset()
        ids, mask = prompt.encode(rows)  # digits as instructions: any text will do
    finally:
        prompt.fixed_length = None
        prompt.reset()
    return torch.from_numpy(ids), torch.from_numpy(mask)


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
    if policy.config.vlm is not None:
        check_vlm_export(policy.config.vlm.family, batch)
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


def action_scale(policy: VLAPolicy) -> list[float]:
    """Robot units per normalised action unit, per dimension (D,): half the bounds' range for
    bounded modes, the (clamped) std for mean_std, 1 for identity."""
    d = policy.config.action_dim
    with torch.no_grad():
        one = policy.normalizer.unnormalize(ACTION, torch.ones(d))
        zero = policy.normalizer.unnormalize(ACTION, torch.zeros(d))
    return (one - zero).tolist()


def _add_int8(
    manifest: Manifest,
    policy: VLAPolicy,
    directory: Path,
    scheme: str,
    calibration_dataset: str | Path | None,
) -> Manifest:
    """Quantise the fp32 graphs in ``directory`` (a complete fp32 export) and, for the chunk
    and flow heads, store the calibration batch and the error measured on it."""
    from embodied_mm.export import calibration
    from embodied_mm.export.ort_policy import REFERENCE, OrtPolicy, int8_error
    from embodied_mm.export.quantize import INT8_TOLERANCE, get_scheme, quantize_int8

    chosen = get_scheme(scheme)
    graph_head = "model" in manifest.graphs
    if chosen.static and not graph_head:
        raise ValueError(
            f"int8 scheme {scheme!r} is static: supported for the chunk and flow heads only"
        )
    fp32 = OrtPolicy(directory, precision="fp32")
    static_feeds = []
    if chosen.static:
        obs, _ = calibration.observations(
            fp32.config, STATIC_CALIBRATION_OBSERVATIONS, calibration_dataset, seed=2
        )
        feeds = fp32.feeds(obs)
        n = manifest.batch or len(feeds["state"])  # a fixed-batch graph takes exactly n
        static_feeds = [
            {k: v[i : i + n] for k, v in feeds.items()} for i in range(0, len(feeds["state"]), n)
        ]
    for name in manifest.graphs:
        quantize_int8(
            directory / graph_file(name, "fp32"),
            directory / graph_file(name, "int8"),
            scheme,
            static_feeds,
        )
    manifest.models["int8"] = {
        g: model_file(directory, graph_file(g, "int8")) for g in manifest.graphs
    }
    manifest.default_precision = "int8"
    manifest.save(directory)
    if graph_head:
        obs, source = calibration.observations(
            fp32.config, CHECK_OBSERVATIONS, calibration_dataset, seed=1
        )
        feeds = fp32.feeds(obs)
        reference = fp32.run_feeds(feeds)  # (B, K, D) robot units
        np.savez(directory / CALIBRATION_FILE, **feeds, **{REFERENCE: reference})
        scale = action_scale(policy)
        int8 = OrtPolicy(directory, precision="int8", check_int8=False)
        manifest.int8_check = Int8Check(
            tolerance=INT8_TOLERANCE,
            measured=int8_error(int8, feeds, reference, scale),
            scale=scale,
            scheme=scheme,
            observations=len(reference),
            source=source,
            calibration=model_file(directory, CALIBRATION_FILE),
        )
    manifest.save(directory)
    return manifest


def _install(built: Path, out: Path) -> None:
    """Move a complete export from ``built`` into ``out``, replacing an earlier export's files;
    the manifest last, so it never names files that are not there yet."""
    for stale in [*out.glob("*.onnx"), out / CALIBRATION_FILE, out / PROCESSOR_FILE]:
        stale.unlink(missing_ok=True)  # other head, int8 ...
    for f in [*built.glob("*.onnx"), *built.glob(CALIBRATION_FILE), built / PROCESSOR_FILE]:
        f.replace(out / f.name)
    tok_dir = out / TOKENIZER_DIR
    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    (built / TOKENIZER_DIR).replace(tok_dir)
    (built / MANIFEST_FILE).replace(out / MANIFEST_FILE)


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    quantize: str | None = None,
    batch: int | None = None,
    int8_scheme: str = DEFAULT_SCHEME,
    calibration_dataset: str | Path | None = None,
) -> Manifest:
    """Export a ``save_pretrained`` directory to ``out`` (created; existing model files are
    replaced). ``quantize="int8"`` also writes the int8 model (``int8_scheme``, see
    ``quantize.SCHEMES``) and makes it the default the runtime loads; its calibration batch
    (and a static scheme's calibration data) come from ``calibration_dataset`` (a LeRobot
    dataset) or, without one, from seeded random observations."""
    import onnx

    if quantize is not None and quantize not in QUANTIZE:
        raise ValueError(f"unknown quantisation {quantize!r}; known: {', '.join(QUANTIZE)}")
    if batch is not None and batch < 1:
        raise ValueError(f"a fixed batch size must be >= 1, got {batch}")
    if calibration_dataset is not None and quantize is None:
        raise ValueError("a calibration dataset is for int8 exports: add --quantize int8")
    checkpoint, out = Path(checkpoint), Path(out)
    policy = VLAPolicy.from_pretrained(checkpoint, device="cpu").eval()
    if calibration_dataset is not None:  # a wrong path fails before the export's work
        from embodied_mm.data.reader import DatasetMeta

        DatasetMeta(Path(calibration_dataset))
    out.mkdir(parents=True, exist_ok=True)
    # Build the whole export in a temporary directory first: a failed export leaves no
    # half-written model beside an old manifest.
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmp_dir = Path(tmp)
        graphs = export_graphs(policy, tmp_dir, batch)
        for name in graphs:
            onnx.checker.check_model(str(tmp_dir / graph_file(name, "fp32")))
        policy.tokenizer.save_pretrained(str(tmp_dir / TOKENIZER_DIR))
        # The same pipeline: onnxruntime runs its host steps, the graph holds the tensor steps.
        policy.processor.pipeline.save(tmp_dir)
        manifest = _fp32_manifest(policy, checkpoint, graphs, batch, tmp_dir)
        manifest.save(tmp_dir)
        if quantize == "int8":
            manifest = _add_int8(manifest, policy, tmp_dir, int8_scheme, calibration_dataset)
        _install(tmp_dir, out)
    return manifest


def _fp32_manifest(
    policy: VLAPolicy,
    checkpoint: Path,
    graphs: dict[str, GraphSpec],
    batch: int | None,
    directory: Path,
) -> Manifest:
    import onnx

    cfg = policy.config
    bounds = policy.normalizer.bounds(ACTION)
    return Manifest(
        head=cfg.head.kind,
        cameras=list(cfg.cameras),
        image_size=cfg.image_size,
        state_dim=cfg.state_dim,
        action_dim=cfg.action_dim,
        chunk_size=cfg.chunk_size,
        text_len=text_length(policy),
        pad_id=policy.pad_id,
        batch=batch,
        graphs=graphs,
        models={"fp32": {g: model_file(directory, graph_file(g, "fp32")) for g in graphs}},
        default_precision="fp32",
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
