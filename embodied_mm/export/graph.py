"""Tensor-only views of a :class:`~embodied_mm.model.modeling_vla.VLAPolicy` for ONNX export.

``predict_chunk`` takes a dict with instruction *strings* and runs a Python tokenizer; an
exported graph can hold neither. :class:`ActionGraph` takes only tensors::

    image_<camera> uint8 (B, H, W, 3)  one input per camera, in config order
    state          float32 (B, S)       robot units (normalised inside the graph)
    text_ids       int64 (B, L)         instruction ids, left-padded
    text_mask      int64 (B, L)         1 = real token
    noise          float32 (B, K, D)    flow head with noise_seed=None only

and returns ``actions`` float32 (B, K, D) in robot units. The graph holds the policy's
tensor-stage processor steps (camera pixels, state normalisation, action unnormalisation and
its bounds; :mod:`embodied_mm.processor`), traced from the same step code PyTorch runs, so
the runtime runs only the host steps (input checks, tokenisation) of the same saved pipeline.

The discrete head decodes K·D tokens one at a time, so it becomes three graphs driven by a
short Python loop (:class:`~embodied_mm.export.ort_policy.OrtPolicy`):
:class:`DiscretePrefill` (same inputs → first bin, mask, last position and the KV cache as
plain tensors), :class:`DiscreteStep` (one bin + the cache → next bin + the grown cache) and
:class:`DiscreteActions` (all bins → actions in robot units).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from embodied_mm.features import OBS_STATE, image_key
from embodied_mm.model.backbone import Backbone
from embodied_mm.model.heads import ChunkHead, DiscreteHead, FlowHead
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.processor.core import Pipeline

# Heads whose whole inference path is one feed-forward graph.
GRAPH_HEADS = ("chunk", "flow")


class MaskedBackbone(nn.Module):
    """The backbone as the heads call it, but always with the attention mask and positions.

    ``Backbone.forward`` drops both when nothing is padded (a fast path for the batch-1 loop).
    That test is data-dependent: tracing would bake in whichever branch the example input
    took, and a padded instruction at run time would then attend to its padding.
    """

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.inner = backbone

    def forward(
        self,
        embeds: torch.Tensor,  # (B, T, H)
        attention_mask: torch.Tensor,  # (B, T)
        position_ids: torch.Tensor,  # (B, T)
        cache: Any = None,
    ) -> torch.Tensor:
        return self.inner.decode(embeds, attention_mask, position_ids, cache)  # (B, T, H)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.inner.embed(ids)

    def logits(self, hidden: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        return self.inner.logits(hidden, rows)


def needs_noise_input(policy: VLAPolicy) -> bool:
    """A flow policy without a noise seed draws fresh start noise per call: a graph input."""
    head = policy.head
    return isinstance(head, FlowHead) and head.cfg.noise_seed is None


def observation_names(policy: VLAPolicy) -> list[str]:
    """Input names of the graphs that take an observation, in order."""
    names = [f"image_{c}" for c in policy.config.cameras] + ["state", "text_ids", "text_mask"]
    return [*names, "noise"] if needs_noise_input(policy) else names


def flow_noise(head: FlowHead) -> torch.Tensor | None:
    """The seeded start noise (K, D) that ``FlowHead.predict`` draws, or None when unseeded."""
    if head.cfg.noise_seed is None:
        return None
    gen = torch.Generator(device="cpu").manual_seed(head.cfg.noise_seed)
    return torch.randn((head.chunk_size, head.action_dim), generator=gen)


class ActionGraph(nn.Module):
    """Observation tensors → action chunk (B, K, D) in robot units (see the module docstring)."""

    def __init__(self, policy: VLAPolicy) -> None:
        super().__init__()
        kind = policy.config.head.kind
        if kind not in GRAPH_HEADS:
            raise ValueError(f"head {kind!r} has no single-graph form; graph heads: {GRAPH_HEADS}")
        self.policy = policy
        self.backbone = MaskedBackbone(policy.backbone)
        self.cameras = list(policy.config.cameras)
        self.noise_input = needs_noise_input(policy)
        if isinstance(policy.head, FlowHead) and not self.noise_input:
            self.register_buffer("noise", flow_noise(policy.head), persistent=False)  # (K, D)

    def input_names(self) -> list[str]:
        return observation_names(self.policy)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        c = len(self.cameras)
        images, state = model_tensors(self.policy, inputs)
        text_ids, text_mask = inputs[c + 1 : c + 3]
        prefix, mask, pos = self.policy.prefix_from_tensors(images, state, text_ids, text_mask)
        head = self.policy.head
        if isinstance(head, ChunkHead):
            pred = head.predict(self.backbone, prefix, mask, pos)  # (B, K, D) in [-1, 1]
        else:
            noise = inputs[c + 3] if self.noise_input else self.noise.expand(state.shape[0], -1, -1)
            pred = self._flow(head, prefix, mask, pos, noise)
        return self.policy.processor.postprocess(pred.float())  # (B, K, D) robot units

    def _flow(
        self,
        head: FlowHead,
        prefix: torch.Tensor,  # (B, P, H)
        mask: torch.Tensor,  # (B, P)
        pos: torch.Tensor,  # (B, P)
        x: torch.Tensor,  # (B, K, D) start noise
    ) -> torch.Tensor:
        """``FlowHead.predict`` with its noise given: the Euler loop unrolls into the graph
        (``flow_steps`` copies of the action expert; the backbone runs once)."""
        memory, pad = head._memory(self.backbone, prefix, mask, pos)  # (B, P, E), (B, P)
        n = head.cfg.flow_steps
        ones = torch.ones_like(x[:, 0, 0])  # (B,): keeps the batch axis symbolic
        for i in range(n):
            t = ones * (1.0 - i / n)
            x = x - head.velocity(x, t, memory, pad).float() / n
        return x.clamp(-1.0, 1.0)  # (B, K, D)


def model_tensors(
    policy: VLAPolicy, inputs: tuple[torch.Tensor, ...]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Graph inputs (uint8 frames per camera, then the state in robot units) through the
    policy's tensor-stage input steps → per-camera pixels (B, 3, S, S), normalised state (B, S)."""
    cameras = policy.config.cameras
    c = len(cameras)
    batch = {image_key(cam): x for cam, x in zip(cameras, inputs[:c], strict=True)}
    batch[OBS_STATE] = inputs[c]
    batch = Pipeline.run(policy.processor.tensor_inputs, batch)
    return [batch[image_key(cam)] for cam in cameras], batch[OBS_STATE]


def _cache_tensors(cache: Any, n_layers: int) -> list[torch.Tensor]:
    """[keys_0, values_0, keys_1, ...], each (B, kv_heads, T, head_dim), of a transformers
    ``DynamicCache`` (``layers`` in 5.x, ``key_cache`` / ``value_cache`` lists in 4.x)."""
    out = []
    for i in range(n_layers):
        if hasattr(cache, "layers"):
            out += [cache.layers[i].keys, cache.layers[i].values]
        else:
            out += [cache.key_cache[i], cache.value_cache[i]]
    return out


class _DiscreteGraph(nn.Module):
    def __init__(self, policy: VLAPolicy) -> None:
        super().__init__()
        if not isinstance(policy.head, DiscreteHead):
            raise ValueError(f"a {policy.config.head.kind!r} policy has no discrete graphs")
        self.policy = policy
        self.backbone = MaskedBackbone(policy.backbone)
        self.n_layers = int(policy.backbone.lm.config.get_text_config().num_hidden_layers)

    def cache_names(self, prefix: str) -> list[str]:
        return [f"{prefix}_{kv}_{i}" for i in range(self.n_layers) for kv in ("key", "value")]

    def _next_bin(self, hidden: torch.Tensor) -> torch.Tensor:
        head = self.policy.head
        return self.backbone.logits(hidden[:, -1:], head._rows()).argmax(-1)  # (B, 1)


class DiscretePrefill(_DiscreteGraph):
    """Observation tensors → first bin (B, 1), mask (B, P), last position (B, 1), KV cache."""

    def output_names(self) -> list[str]:
        return ["bin", "mask", "pos", *self.cache_names("present")]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c = len(self.policy.config.cameras)
        images, state = model_tensors(self.policy, inputs)
        text_ids, text_mask = inputs[c + 1 : c + 3]
        prefix, mask, pos = self.policy.prefix_from_tensors(images, state, text_ids, text_mask)
        cache = self.policy.backbone.new_cache()
        hidden = self.backbone(prefix, mask, pos, cache)  # (B, P, H)
        return (self._next_bin(hidden), mask, pos[:, -1:], *_cache_tensors(cache, self.n_layers))


class DiscreteStep(_DiscreteGraph):
    """One bin (B, 1), mask (B, T + 1), its position (B, 1) and the cache of T tokens → the
    next bin (B, 1) and the cache of T + 1 tokens (``DiscreteHead.predict``'s loop body)."""

    def input_names(self) -> list[str]:
        return ["bin", "mask", "pos", *self.cache_names("past")]

    def output_names(self) -> list[str]:
        return ["next_bin", *self.cache_names("present")]

    def forward(
        self, bin_: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        cache = self.policy.backbone.new_cache()
        for i in range(self.n_layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        embeds = self.backbone.embed(bin_ + self.policy.head.token_offset)  # (B, 1, H)
        hidden = self.backbone(embeds, mask, pos, cache)  # (B, 1, H)
        return (self._next_bin(hidden), *_cache_tensors(cache, self.n_layers))


class DiscreteActions(_DiscreteGraph):
    """Bins (B, K·D) → actions (B, K, D) in robot units (bin centres, unnormalised)."""

    def forward(self, bins: torch.Tensor) -> torch.Tensor:
        pred = self.policy.head.detokenize(bins)  # (B, K, D) in [-1, 1]
        return self.policy.processor.postprocess(pred)  # (B, K, D) robot units
