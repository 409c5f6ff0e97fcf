"""Speed of the policy stack: latency of ``predict_chunk`` against the bare model compute.

*Framework overhead* is what embodied-mm adds around the networks: input checks, image
layout/resize, tokenisation, normalisation, token assembly, masks and position ids, the
decode loop's bookkeeping. It is measured as ``predict_chunk`` time over the time of the same
networks called directly on ready tensors with the same token counts (see
:func:`bare_compute`), at the p50 (the definition) and at the p10 (less sensitive to other
jobs on a shared machine). The bare backbone forward alone is reported too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from embodied_mm.features import OBS_STATE, TASK, image_key
from embodied_mm.model.heads import ChunkHead, DiscreteHead, FlowHead
from embodied_mm.model.modeling_vla import VLAPolicy

TASK_TEXT = "pick up the red cube and place it in the blue bin"


@dataclass
class ModelBenchRow:
    recipe: str
    params: int
    prefix_tokens: int
    p50_ms: float
    p99_ms: float
    actions_per_s: float
    backbone_ms: float  # bare backbone forward(s), same token counts
    compute_ms: float  # every network of the policy, called directly on ready tensors
    overhead_pct: float  # predict_chunk p50 over compute_ms, minus 1
    # the same ratio at the 10th percentiles: calls a shared machine's other jobs did not
    # preempt, so it moves far less with their load than the p50 ratio does
    overhead_p10_pct: float = float("nan")


def example_obs(policy: VLAPolicy, batch: int = 1, seed: int = 0) -> dict:
    """A random observation in the policy's input format (uint8 frames at config.image_size)."""
    g = torch.Generator().manual_seed(seed)
    cfg = policy.config
    obs: dict = {
        image_key(cam): torch.randint(
            0, 256, (batch, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8, generator=g
        )
        for cam in cfg.cameras
    }
    obs[OBS_STATE] = torch.randn(batch, cfg.state_dim, generator=g)
    obs[TASK] = [TASK_TEXT] * batch
    return obs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(
    fn: Callable[[], object],
    device: torch.device,
    iters: int,
    warmup: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Time of ``fn`` per call in milliseconds on ``clock`` (seconds; wall time by default),
    ``iters`` samples after ``warmup`` calls that are not timed."""
    for _ in range(warmup):
        fn()
    _sync(device)
    samples = []
    for _ in range(iters):
        t0 = clock()
        fn()
        _sync(device)
        samples.append((clock() - t0) * 1e3)
    return samples


def _percentile(xs: list[float], q: float) -> float:
    return float(torch.tensor(xs).quantile(q))


def bare_compute(policy: VLAPolicy, obs: dict) -> tuple[Callable[[], object], Callable[[], object]]:
    """Two closures on ready tensors: (bare backbone forward(s), every network of the policy).

    The second calls the networks one after another exactly as ``predict_chunk`` needs them
    (towers, projector, proprio MLP, backbone, head: LM-head rows + argmax + embedding per
    token for ``discrete``, the expert's Euler steps for ``flow``) with no input handling,
    tokenisation, normalisation, masks or position ids. For a VLM policy the image path is
    the VLM's own (vision tower + its projector, :meth:`VLMBackbone.encode_images`); the
    prompt's embedding and the placeholder fill count as framework.
    """
    device = policy.device
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.inference_mode():
        prefix = policy.prefix_from_inputs(policy.preprocess(obs))[0]
    b, p, h = prefix.shape
    head = policy.head
    bb = policy.backbone
    vision = policy.vision
    n_cams = len(policy.config.cameras)
    vlm = policy.config.vlm
    size = vlm.image_size if vision is None else vision.towers[0].image_size
    pixels = torch.rand(b * n_cams, 3, size, size, device=device)
    state = torch.randn(b, policy.config.state_dim, device=device)
    k, d = policy.config.chunk_size, policy.config.action_dim
    n_vis = p - policy.proprio.num_tokens  # text tokens count as input embeddings

    if isinstance(head, ChunkHead):
        seq = torch.randn(b, p + head.queries.shape[0], h, device=device, dtype=dtype)

        def backbone() -> torch.Tensor:
            return bb.decode(seq)
    elif isinstance(head, DiscreteHead):
        seq = torch.randn(b, p, h, device=device, dtype=dtype)
        rows = head._rows()

        def backbone() -> torch.Tensor:
            cache = bb.new_cache()
            out = bb.decode(seq, cache=cache)
            for _ in range(k * d - 1):
                step = bb.embed(bb.logits(out[:, -1:], rows).argmax(-1) + head.token_offset)
                out = bb.decode(step, cache=cache)
            return out
    elif isinstance(head, FlowHead):
        seq = torch.randn(b, p, h, device=device, dtype=dtype)

        def backbone() -> torch.Tensor:
            return bb.decode(seq)
    else:
        raise TypeError(f"no bare-compute model for head {type(head).__name__}")

    def images() -> None:
        if vision is None:  # a VLM's own tower and projector
            bb.encode_images(pixels)  # type: ignore[attr-defined]
            return
        feats = vision.towers[0].model(pixel_values=pixels).last_hidden_state
        if not vision.shared:  # per-camera towers: one call each
            for t in list(vision.towers)[1:]:
                t.model(pixel_values=pixels[:b])
        policy.projector(feats)

    def compute() -> object:
        images()
        policy.proprio(state)
        out = backbone()
        if isinstance(head, ChunkHead):
            head.out(out[:, n_vis:])
        elif isinstance(head, FlowHead):
            memory = head.memory_proj(out.float())
            pad = torch.zeros(b, p, dtype=torch.bool, device=device)
            x = torch.randn(b, k, d, device=device)
            for i in range(head.cfg.flow_steps):
                t = torch.full((b,), 1.0 - i / head.cfg.flow_steps, device=device)
                x = x - head.velocity(x, t, memory, pad)
        return out

    def run(fn: Callable[[], object]) -> Callable[[], object]:
        def wrapped() -> object:
            with torch.inference_mode(), policy._autocast():
                return fn()

        return wrapped

    return run(backbone), run(compute)


def bench_policy(name: str, policy: VLAPolicy, iters: int = 50) -> ModelBenchRow:
    policy.eval()
    obs = example_obs(policy)
    device = policy.device
    backbone_fn, compute_fn = bare_compute(policy, obs)
    # Interleave the three measurements so load changes on a shared machine hit all alike.
    lat, backbone, compute = [], [], []
    for _ in range(iters):
        lat += time_ms(lambda: policy.predict_chunk(obs), device, 1, warmup=1)
        backbone += time_ms(backbone_fn, device, 1, warmup=1)
        compute += time_ms(compute_fn, device, 1, warmup=1)
    with torch.inference_mode():
        prefix_tokens = policy.prefix_from_inputs(policy.preprocess(obs))[0].shape[1]
    return row_from_samples(
        name, policy.num_parameters(), prefix_tokens, policy.config.chunk_size,
        lat, backbone, compute,
    )  # fmt: skip


def row_from_samples(
    name: str,
    params: int,
    prefix_tokens: int,
    chunk_size: int,
    lat: list[float],
    backbone: list[float],
    compute: list[float],
) -> ModelBenchRow:
    """The row for timed samples (ms) of ``predict_chunk`` (``lat``), the bare backbone and
    the bare networks (percentiles interpolate linearly between samples)."""
    backbone_ms, compute_ms = _percentile(backbone, 0.5), _percentile(compute, 0.5)
    p50 = _percentile(lat, 0.5)
    return ModelBenchRow(
        recipe=name,
        params=params,
        prefix_tokens=prefix_tokens,
        p50_ms=p50,
        p99_ms=_percentile(lat, 0.99),
        actions_per_s=chunk_size / (p50 / 1e3),
        backbone_ms=backbone_ms,
        compute_ms=compute_ms,
        overhead_pct=(p50 / compute_ms - 1.0) * 100.0,
        overhead_p10_pct=(_percentile(lat, 0.1) / _percentile(compute, 0.1) - 1.0) * 100.0,
    )


def format_table(rows: list[ModelBenchRow]) -> str:
    header = (
        "| recipe | params | prefix tokens | predict_chunk p50 ms | p99 ms | actions/s "
        "| bare backbone ms | bare networks ms | framework overhead | overhead at p10 |"
    )
    lines = [header, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r.recipe} | {r.params / 1e6:.2f}M | {r.prefix_tokens} | {r.p50_ms:.2f} "
            f"| {r.p99_ms:.2f} | {r.actions_per_s:,.0f} | {r.backbone_ms:.2f} "
            f"| {r.compute_ms:.2f} | {r.overhead_pct:+.1f}% | {r.overhead_p10_pct:+.1f}% |"
        )
    return "\n".join(lines)


def head_comparison(rows: list[ModelBenchRow]) -> str | None:
    """``chunk`` vs ``discrete`` actions/s on the same backbone (the vla-chunk / vla-discrete rows)."""
    by = {r.recipe: r for r in rows}
    if "vla-chunk" not in by or "vla-discrete" not in by:
        return None
    c, d = by["vla-chunk"], by["vla-discrete"]
    return (
        f"chunk vs discrete (same backbone): {c.actions_per_s:,.0f} vs {d.actions_per_s:,.0f} "
        f"actions/s, ratio {c.actions_per_s / d.actions_per_s:.1f}x"
    )
