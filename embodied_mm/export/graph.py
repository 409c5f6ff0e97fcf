"""Tensor-only views of a :class:`~embodied_mm.model.policy.VLAPolicy` for ONNX export.

``predict_chunk`` takes a dict with instruction *strings* and runs a Python tokenizer; an
exported graph can hold neither. :class:`ActionGraph` takes only tensors::

    image_<camera> uint8 (B, H, W, 3)  one input per camera, in config order
    state          float32 (B, S)       robot units (normalised inside the graph)
    text_ids       int64 (B, L)         instruction ids, left-padded
    text_mask      int64 (B, L)         1 = real token
    noise          float32 (B, K, D)    flow head with noise_seed=None only

and returns ``actions`` float32 (B, K, D) in robot units: the action normaliser and its
bounds are inside the graph, so the runtime only tokenises the instruction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from embodied_mm.model.backbone import Backbone
from embodied_mm.model.encoders import images_to_float
from embodied_mm.model.heads import ChunkHead, FlowHead
from embodied_mm.model.policy import VLAPolicy

# Heads whose whole inference path is one feed-forward graph. The discrete head decodes
# K·D tokens autoregressively; see ``onnx_export.UNSUPPORTED``.
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
        self.noise_input = False
        if isinstance(policy.head, FlowHead):
            noise = flow_noise(policy.head)
            self.noise_input = noise is None
            if noise is not None:
                self.register_buffer("noise", noise, persistent=False)  # (K, D)

    def input_names(self) -> list[str]:
        names = [f"image_{c}" for c in self.cameras] + ["state", "text_ids", "text_mask"]
        return [*names, "noise"] if self.noise_input else names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        c = len(self.cameras)
        images = [images_to_float(x) for x in inputs[:c]]  # each (B, 3, H, W) in [0, 1]
        state, text_ids, text_mask = inputs[c : c + 3]
        prefix, mask, pos = self.policy.prefix_from_tensors(images, state, text_ids, text_mask)
        head = self.policy.head
        if isinstance(head, ChunkHead):
            pred = head.predict(self.backbone, prefix, mask, pos)  # (B, K, D) in [-1, 1]
        else:
            noise = inputs[c + 3] if self.noise_input else self.noise.expand(state.shape[0], -1, -1)
            pred = self._flow(head, prefix, mask, pos, noise)
        return self.policy.normalizer.unnormalize("action", pred.float())  # (B, K, D)

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
