"""Input projectors: map vision features (B, N, Dv) into the backbone's embedding space.

- ``linear``: one linear map per token.
- ``mlp``: LLaVA-1.5's two-layer GELU MLP.
- ``resampler``: learned queries cross-attend to the patch features (Flamingo/BLIP-2 style),
  giving a fixed token count per image whatever the tower's patch count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from embodied_mm.model.config_io import Checked, Rule, at_least, registered
from embodied_mm.registry import Registry


@dataclass
class ProjectorConfig(Checked):
    kind: str = "mlp"  # a PROJECTORS name
    num_queries: int = 16  # resampler: tokens per image
    num_heads: int = 4  # resampler attention heads
    num_layers: int = 1  # resampler cross-attention blocks

    RULES: ClassVar[dict[str, Rule]] = {
        "kind": registered(lambda: PROJECTORS.names()),
        **dict.fromkeys(("num_queries", "num_heads", "num_layers"), at_least(1)),
    }


PROJECTORS: Registry[type[nn.Module]] = Registry("projector")


@PROJECTORS.register("linear")
class LinearProjector(nn.Module):
    def __init__(self, cfg: ProjectorConfig, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def num_tokens(self, n_in: int) -> int:
        return n_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, N, H)


@PROJECTORS.register("mlp")
class MLPProjector(nn.Module):
    def __init__(self, cfg: ProjectorConfig, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def num_tokens(self, n_in: int) -> int:
        return n_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, N, H)


class _ResamplerBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(kv)
        q = q + self.attn(self.norm_q(q), kv, kv, need_weights=False)[0]
        return q + self.ff(self.norm_ff(q))


@PROJECTORS.register("resampler")
class ResamplerProjector(nn.Module):
    def __init__(self, cfg: ProjectorConfig, in_dim: int, out_dim: int) -> None:
        super().__init__()
        if out_dim % cfg.num_heads:
            raise ValueError(
                f"resampler: out_dim {out_dim} not divisible by num_heads {cfg.num_heads}"
            )
        self.queries = nn.Parameter(torch.randn(cfg.num_queries, out_dim) * 0.02)
        self.inp = nn.Linear(in_dim, out_dim)
        self.blocks = nn.ModuleList(
            [_ResamplerBlock(out_dim, cfg.num_heads) for _ in range(cfg.num_layers)]
        )
        self.norm = nn.LayerNorm(out_dim)

    def num_tokens(self, n_in: int) -> int:
        return self.queries.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kv = self.inp(x)  # (B, N, H)
        q = self.queries.unsqueeze(0).expand(x.shape[0], -1, -1)  # (B, Q, H)
        for block in self.blocks:
            q = block(q, kv)
        return self.norm(q)  # (B, Q, H)


def build_projector(cfg: ProjectorConfig, in_dim: int, out_dim: int) -> nn.Module:
    return PROJECTORS.get(cfg.kind)(cfg, in_dim, out_dim)
