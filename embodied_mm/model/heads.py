"""Output projectors: action heads and plan text.

Every head continues the same prefix (text, image and state tokens already embedded) and
works in normalised action space ([-1, 1] for bounded actions):

- ``discrete`` (RT-2 / OpenVLA): each action dimension is one of ``num_bins`` reserved vocab
  tokens over [-1, 1]; trained with cross-entropy under teacher forcing, decoded
  autoregressively (K·D tokens) with the backbone's KV cache.
- ``chunk`` (OpenVLA-OFT): K·D learned action queries (or K, one per step) appended to the
  prefix; the whole chunk comes out of ONE forward pass; L1 loss.
- ``flow`` (π0): a small transformer "action expert" cross-attends to the backbone's hidden
  states of the prefix and predicts the flow-matching velocity; N Euler steps at inference
  reuse the prefix hidden states (the backbone runs once).

Plan text goes through the LM head (:class:`PlanText`).

Real-time chunking (Black, Galliker, Levine 2025): a chunk requested while the previous one
still plays can be asked to continue a :class:`Committed` prefix, the actions the robot
executes while it is computed. The ``chunk`` head takes it as input when trained with
``rtc_max_delay`` > 0 (prefix conditioning) and its first ``delay`` actions are the prefix;
the ``flow`` head needs no training: the Euler steps are guided towards the committed actions
(ΠGDM-style inpainting with the paper's soft mask, :func:`rtc_soft_mask`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from embodied_mm.model.backbone import Backbone, EncodedPrefix
from embodied_mm.model.config_io import Checked, Rule, at_least, registered
from embodied_mm.registry import Registry


@dataclass
class HeadConfig(Checked):
    """Options of every head; each head reads only its own fields."""

    kind: str = "chunk"  # a HEADS name
    num_bins: int = 256  # discrete: bins per dimension over [-1, 1]
    per_dim_queries: bool = True  # chunk: one query per (step, dim) as OpenVLA-OFT; False: per step
    expert_hidden: int = 64  # flow: width of the action expert
    expert_layers: int = 2
    expert_heads: int = 4
    flow_steps: int = 10  # flow: Euler steps at inference
    # flow: seed of the inference noise. A fixed seed makes predict_chunk deterministic and
    # each sample's result independent of the rest of the batch; None draws fresh noise.
    noise_seed: int | None = 0
    # chunk: > 0 trains with prefix conditioning for real-time chunking: each sample gets a
    # random delay d in 0..rtc_max_delay and its first d ground-truth actions as input, so
    # that inference continues a committed prefix of up to this many actions (--mode rtc).
    # 0: no prefix input (the layout of checkpoints from before it existed).
    rtc_max_delay: int = 0
    # flow: the largest guidance weight of RTC inpainting (the paper's beta)
    rtc_max_guidance: float = 5.0

    RULES: ClassVar[dict[str, Rule]] = {
        "kind": registered(lambda: HEADS.names()),
        "num_bins": at_least(2),
        **dict.fromkeys(
            ("expert_hidden", "expert_layers", "expert_heads", "flow_steps"), at_least(1)
        ),
        **dict.fromkeys(("rtc_max_delay", "rtc_max_guidance"), at_least(0)),
    }


@dataclass
class Committed:
    """Actions already committed to when a chunk is requested (real-time chunking), in
    normalised action space.

    ``actions`` (B, L, D): the previous plan's actions for the chunk's first L steps (rows at
    or past ``overlap`` are padding); ``delay`` (B,): the first ``delay`` of them execute while
    the chunk is computed and are frozen; ``overlap`` (B,) >= delay: how many rows are real
    (the rest of the old plan, which guided flow softly continues)."""

    actions: torch.Tensor  # (B, L, D)
    delay: torch.Tensor  # (B,) long
    overlap: torch.Tensor  # (B,) long

    def padded(self, k: int) -> torch.Tensor:
        """``actions`` cut or zero-padded to K rows: (B, K, D)."""
        a = self.actions[:, :k]
        if a.shape[1] < k:
            a = torch.cat([a, a.new_zeros(a.shape[0], k - a.shape[1], a.shape[2])], dim=1)
        return a

    def frozen(self, k: int) -> torch.Tensor:
        """(B, K) bool: True at the frozen steps (i < delay)."""
        return torch.arange(k, device=self.delay.device)[None] < self.delay[:, None]


def rtc_soft_mask(delay: torch.Tensor, overlap: torch.Tensor, k: int) -> torch.Tensor:
    """The guidance weights (B, K) of real-time chunking (Black et al. 2025, eq. 5): 1 on the
    frozen steps i < d, then exponentially decaying over the rest of the old plan,
    ``c (e^c - 1) / (e - 1)`` with ``c = (L - i) / (L - d + 1)`` for d <= i < L, 0 from L on."""
    i = torch.arange(k, device=delay.device, dtype=torch.float32)[None]  # (1, K)
    d = delay.float()[:, None]  # (B, 1)
    n = overlap.float()[:, None]
    c = (n - i) / (n - d + 1.0)
    soft = c * (torch.exp(c) - 1.0) / (math.e - 1.0)
    return torch.where(
        i < d, torch.ones_like(soft), torch.where(i < n, soft, torch.zeros_like(soft))
    )


def extend_positions(
    mask: torch.Tensor | None, pos: torch.Tensor | None, n: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Mask and positions (B, P + n) for ``n`` real tokens after the prefix.

    ``mask is None`` means the prefix has no padding: plain causal attention with default
    positions is then exact, and transformers skips building a mask (the batch-1 control loop).
    """
    if mask is None or pos is None:
        return None, None
    ones = mask.new_ones(mask.shape[0], n)
    steps = torch.arange(1, n + 1, device=pos.device)
    return torch.cat([mask, ones], dim=1), torch.cat([pos, pos[:, -1:] + steps], dim=1)


def suffix_positions(prefix: EncodedPrefix, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask and positions (B, n) of ``n`` real tokens after an encoded prefix."""
    b = prefix.pos.shape[0]
    steps = torch.arange(1, n + 1, device=prefix.pos.device)
    return prefix.mask.new_ones(b, n), prefix.pos[:, -1:] + steps


def dense_positions(
    mask: torch.Tensor | None, pos: torch.Tensor | None, prefix: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit mask and positions (B, P) for code that extends them with padded tokens."""
    if mask is not None and pos is not None:
        return mask, pos
    b, p = prefix.shape[:2]
    mask = torch.ones(b, p, dtype=torch.long, device=prefix.device)
    return mask, torch.arange(p, device=prefix.device).expand(b, p)


class ActionHead(nn.Module):
    """Base of the action heads: a loss in training, a chunk (B, K, D) in [-1, 1] at inference."""

    def __init__(self, cfg: HeadConfig, hidden_size: int, chunk_size: int, action_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.chunk_size = chunk_size
        self.action_dim = action_dim

    @staticmethod
    def extra_tokens(cfg: HeadConfig) -> int:
        """Vocab ids the head reserves after the text vocabulary."""
        return 0

    def loss(
        self,
        backbone: Backbone,
        prefix: EncodedPrefix,  # the prefix already run (Backbone.encode_prefix)
        actions: torch.Tensor,  # (B, K, D) normalised
        valid: torch.Tensor,  # (B, K) bool, False where the step is padding
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def predict(
        self,
        backbone: Backbone,
        prefix: torch.Tensor,
        mask: torch.Tensor | None,
        pos: torch.Tensor | None,
        committed: Committed | None = None,
    ) -> torch.Tensor:
        """(B, K, D) in [-1, 1]; ``committed``: continue these actions (real-time chunking;
        only heads with :attr:`rtc_max_delay` > 0 take it)."""
        raise NotImplementedError

    @property
    def rtc_max_delay(self) -> int:
        """The largest delay :meth:`predict` continues a committed prefix for (0: none)."""
        return 0

    #: the first ``delay`` actions of a chunk are the committed ones exactly (prefix
    #: conditioning) rather than close to them (guided inpainting)
    exact_prefix: bool = False

    def _check_committed(self, committed: Committed | None) -> None:
        if committed is None:
            return
        worst = int(committed.delay.max()) if committed.delay.numel() else 0
        if worst > self.rtc_max_delay:
            if self.rtc_max_delay == 0:
                raise ValueError(
                    f"this {self.cfg.kind} head cannot continue a committed prefix (real-time "
                    f"chunking): train a chunk head with --rtc-max-delay D, or use a flow head"
                )
            raise ValueError(
                f"a delay of {worst} steps exceeds the {self.rtc_max_delay} this head was "
                f"trained for (--rtc-max-delay)"
            )


HEADS: Registry[type[ActionHead]] = Registry("action head")


def _masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, K, ...) over steps where ``valid`` (B, K)."""
    w = valid.to(x.dtype).view(*valid.shape, *([1] * (x.ndim - 2))).expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1.0)


@HEADS.register("chunk")
class ChunkHead(ActionHead):
    """With ``rtc_max_delay`` > 0, a committed action goes into the query of its step (and
    dimension) through ``committed_in``: the queries of frozen steps say "this is the
    action", the others continue it."""

    exact_prefix = True

    def __init__(self, cfg: HeadConfig, hidden_size: int, chunk_size: int, action_dim: int) -> None:
        super().__init__(cfg, hidden_size, chunk_size, action_dim)
        n_queries = chunk_size * action_dim if cfg.per_dim_queries else chunk_size
        self.queries = nn.Parameter(torch.randn(n_queries, hidden_size) * 0.02)
        self.out = nn.Linear(hidden_size, 1 if cfg.per_dim_queries else action_dim)
        self.committed_in: nn.Linear | None = None
        if cfg.rtc_max_delay > 0:  # absent otherwise: older checkpoints keep their layout
            self.committed_in = nn.Linear(1 if cfg.per_dim_queries else action_dim, hidden_size)

    @property
    def rtc_max_delay(self) -> int:
        return min(self.cfg.rtc_max_delay, self.chunk_size)

    def _queries(self, b: int, dtype: torch.dtype, committed: Committed | None) -> torch.Tensor:
        queries = self.queries.to(dtype).unsqueeze(0).expand(b, -1, -1)  # (B, Q, H)
        if committed is None or self.committed_in is None:
            return queries
        k, d = self.chunk_size, self.action_dim
        values = committed.padded(k).float()  # (B, K, D)
        frozen = committed.frozen(k)  # (B, K)
        if self.cfg.per_dim_queries:
            values = values.reshape(b, k * d, 1)  # (B, K*D, 1), step-major like the queries
            frozen = frozen.repeat_interleave(d, dim=1)  # (B, K*D)
        added = self.committed_in(values) * frozen[..., None].to(values.dtype)  # (B, Q, H)
        return queries + added.to(dtype)

    def _chunk(self, backbone, prefix, mask, pos, committed=None) -> torch.Tensor:
        b, n = prefix.shape[0], self.queries.shape[0]
        queries = self._queries(b, prefix.dtype, committed)
        full_mask, full_pos = extend_positions(mask, pos, n)
        hidden = backbone(torch.cat([prefix, queries], 1), full_mask, full_pos)
        return self._read(hidden[:, -n:])

    def _read(self, hidden: torch.Tensor) -> torch.Tensor:
        """The queries' hidden states (B, Q, H) → the chunk (B, K, D)."""
        return self.out(hidden).reshape(hidden.shape[0], self.chunk_size, self.action_dim)

    def loss(self, backbone, prefix, actions, valid):
        committed = None
        if self.committed_in is not None:
            # RTC prefix conditioning: a random delay d in 0..D per sample, its first d
            # ground-truth actions committed; the loss is on the continuation only (the
            # committed steps are replaced by the prefix at inference).
            b, k = actions.shape[:2]
            delay = torch.randint(0, self.rtc_max_delay + 1, (b,), device=actions.device)
            committed = Committed(actions, delay, torch.full_like(delay, k))
            valid = valid & ~committed.frozen(k)
        queries = self._queries(actions.shape[0], prefix.embeds.dtype, committed)
        mask, pos = suffix_positions(prefix, queries.shape[1])
        pred = self._read(backbone.continue_prefix(prefix, queries, mask, pos))
        l1 = _masked_mean((pred.float() - actions).abs(), valid)
        return l1, {"l1": l1.item()}

    def predict(self, backbone, prefix, mask, pos, committed=None):
        self._check_committed(committed)
        return self._chunk(backbone, prefix, mask, pos, committed).float().clamp(-1.0, 1.0)


@HEADS.register("discrete")
class DiscreteHead(ActionHead):
    """Action tokens: bin b of every dimension is vocab id ``token_offset + b``."""

    def __init__(self, cfg: HeadConfig, hidden_size: int, chunk_size: int, action_dim: int) -> None:
        super().__init__(cfg, hidden_size, chunk_size, action_dim)
        self.num_bins = cfg.num_bins
        self.token_offset = 0  # set by the policy from the backbone's reserved ids

    @staticmethod
    def extra_tokens(cfg: HeadConfig) -> int:
        return cfg.num_bins

    def tokenize(self, actions: torch.Tensor) -> torch.Tensor:
        """(B, K, D) in [-1, 1] → bins (B, K·D) in [0, num_bins)."""
        scaled = (actions.clamp(-1.0, 1.0) + 1.0) / 2.0 * self.num_bins
        return scaled.floor().long().clamp(0, self.num_bins - 1).flatten(1)

    def detokenize(self, bins: torch.Tensor) -> torch.Tensor:
        """Bins (B, K·D) → bin centres (B, K, D); off by at most half a bin."""
        centres = (bins.float() + 0.5) / self.num_bins * 2.0 - 1.0
        return centres.view(bins.shape[0], self.chunk_size, self.action_dim)

    def _rows(self) -> slice:
        return slice(self.token_offset, self.token_offset + self.num_bins)

    def loss(self, backbone, prefix, actions, valid):
        bins = self.tokenize(actions)  # (B, KD)
        # Teacher forcing: the last prefix token predicts bin 0, bin j predicts bin j+1.
        inputs = backbone.embed(bins[:, :-1] + self.token_offset).to(prefix.embeds.dtype)
        mask, pos = suffix_positions(prefix, inputs.shape[1])
        hidden = torch.cat(
            [prefix.hidden[:, -1:], backbone.continue_prefix(prefix, inputs, mask, pos)], dim=1
        )  # (B, KD, H)
        logits = backbone.logits(hidden, self._rows()).float()  # (B, KD, bins)
        token_valid = valid.repeat_interleave(self.action_dim, dim=1)  # (B, KD)
        ce = F.cross_entropy(logits.transpose(1, 2), bins, reduction="none")  # (B, KD)
        w = token_valid.float()
        loss = (ce * w).sum() / w.sum().clamp_min(1.0)
        acc = ((logits.argmax(-1) == bins).float() * w).sum() / w.sum().clamp_min(1.0)
        return loss, {"ce": loss.item(), "token_acc": acc.item()}

    def predict(self, backbone, prefix, mask, pos, committed=None):
        self._check_committed(committed)
        cache = backbone.new_cache()
        n = self.chunk_size * self.action_dim
        hidden = backbone(prefix, mask, pos, cache)[:, -1:]  # (B, 1, H)
        next_pos = None if pos is None else pos[:, -1:]
        bins = []
        for step in range(n):
            tok = backbone.logits(hidden, self._rows()).argmax(-1)  # (B, 1)
            bins.append(tok)
            if step == n - 1:
                break
            if mask is not None and next_pos is not None:  # padded prefix: explicit positions
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
                next_pos = next_pos + 1
            embeds = backbone.embed(tok + self.token_offset).to(prefix.dtype)
            hidden = backbone(embeds, mask, next_pos, cache)
        return self.detokenize(torch.cat(bins, dim=1))


def _time_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of flow time t (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None] * 2 * math.pi
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@HEADS.register("flow")
class FlowHead(ActionHead):
    """π0-style flow matching: x_t = t·noise + (1-t)·action, velocity target noise - action;
    inference integrates from t=1 (noise) to t=0 (action) in ``flow_steps`` Euler steps."""

    def __init__(self, cfg: HeadConfig, hidden_size: int, chunk_size: int, action_dim: int) -> None:
        super().__init__(cfg, hidden_size, chunk_size, action_dim)
        e = cfg.expert_hidden
        self.memory_proj = nn.Linear(hidden_size, e)
        self.action_in = nn.Linear(action_dim, e)
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.step_embed = nn.Parameter(torch.randn(chunk_size, e) * 0.02)
        layer = nn.TransformerDecoderLayer(
            e, cfg.expert_heads, 2 * e, dropout=0.0, batch_first=True, norm_first=True
        )
        self.expert = nn.TransformerDecoder(layer, cfg.expert_layers)
        self.action_out = nn.Linear(e, action_dim)

    def _memory(self, backbone, prefix, mask, pos) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = backbone(prefix, mask, pos)  # (B, P, H)
        pad = None if mask is None else mask == 0  # (B, P) True = pad
        return self.memory_proj(hidden.float()), pad  # (B, P, E)

    def velocity(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        memory: torch.Tensor,
        memory_pad: torch.Tensor | None,
    ) -> torch.Tensor:
        """x_t (B, K, D), t (B,) → velocity (B, K, D)."""
        time = self.time_mlp(_time_features(t, self.cfg.expert_hidden))  # (B, E)
        # A pooled summary of the prefix goes straight into every action token: a direct path
        # for the conditioning, which cross-attention alone learns slowly.
        if memory_pad is None:
            pooled = memory.mean(1)  # (B, E)
        else:
            keep = (~memory_pad).unsqueeze(-1).to(memory.dtype)  # (B, P, 1)
            pooled = (memory * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        tokens = self.action_in(x_t) + self.step_embed + (time + pooled)[:, None]  # (B, K, E)
        out = self.expert(tokens, memory, memory_key_padding_mask=memory_pad)
        return self.action_out(out)

    def loss(self, backbone, prefix, actions, valid):
        memory, pad = self.memory_proj(prefix.hidden.float()), prefix.mask == 0
        b = actions.shape[0]
        noise = torch.randn_like(actions)
        # π0 samples t from a Beta(1.5, 1) skewed towards noisy times.
        t = torch.distributions.Beta(1.5, 1.0).sample((b,)).to(actions.device) * 0.999 + 0.001
        x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * actions
        v = self.velocity(x_t, t, memory, pad)
        mse = _masked_mean((v.float() - (noise - actions)) ** 2, valid)
        return mse, {"flow_mse": mse.item()}

    @property
    def rtc_max_delay(self) -> int:
        return self.chunk_size

    def predict(self, backbone, prefix, mask, pos, committed=None):
        memory, pad = self._memory(backbone, prefix, mask, pos)
        b = prefix.shape[0]
        shape = (b, self.chunk_size, self.action_dim)
        if self.cfg.noise_seed is None:
            x = torch.randn(shape, device=prefix.device)
        else:
            # Every sample starts from the same seeded draw, so a sample's chunk depends on
            # neither the batch size nor its position (torch's RNG output depends on both).
            gen = torch.Generator(device=prefix.device).manual_seed(self.cfg.noise_seed)
            x = torch.randn(shape[1:], device=prefix.device, generator=gen).expand(shape)
        n = self.cfg.flow_steps
        if committed is not None:
            self._check_committed(committed)
            return self._guided(x, memory, pad, committed).clamp(-1.0, 1.0)
        for i in range(n):
            t = torch.full((b,), 1.0 - i / n, device=prefix.device)
            x = x - self.velocity(x, t, memory, pad).float() / n
        return x.clamp(-1.0, 1.0)

    def _guided(
        self,
        x: torch.Tensor,  # (B, K, D) the initial noise
        memory: torch.Tensor,  # (B, P, E)
        pad: torch.Tensor | None,
        committed: Committed,
    ) -> torch.Tensor:
        """Euler steps with RTC's training-free inpainting (Black et al. 2025, algorithm 1,
        in this head's time convention: t = 1 is noise, t = 0 the action). At each step the
        action the velocity implies, ``â = x - t v``, is pulled towards the committed actions
        under the soft mask W: ``v <- v - w J^T (W (Y - â))`` with J = dâ/dx, and the weight
        ``w = min(beta, t / ((1 - t) r²))``, ``r² = t² / (t² + (1 - t)²)``, clipped at
        ``rtc_max_guidance`` (beta) where it diverges at t = 1."""
        b, k = x.shape[:2]
        n = self.cfg.flow_steps
        beta = float(self.cfg.rtc_max_guidance)
        target = committed.padded(k).float()  # (B, K, D)
        weights = rtc_soft_mask(committed.delay, committed.overlap, k)[..., None]  # (B, K, 1)
        # the vector-Jacobian product needs autograd, also under torch.inference_mode
        with torch.inference_mode(False), torch.enable_grad():
            memory = memory.clone()
            pad = None if pad is None else pad.clone()
            x = x.clone().float()
            target, weights = target.clone(), weights.clone()
            for i in range(n):
                t_val = 1.0 - i / n
                t = torch.full((b,), t_val, device=x.device)
                x_in = x.detach().requires_grad_(True)
                v = self.velocity(x_in, t, memory, pad).float()  # (B, K, D)
                clean = x_in - t_val * v  # (B, K, D) the action this velocity leads to
                error = (target - clean) * weights
                (vjp,) = torch.autograd.grad(clean, x_in, error)
                r2 = t_val**2 / (t_val**2 + (1.0 - t_val) ** 2)
                w = beta if t_val >= 1.0 else min(beta, t_val / ((1.0 - t_val) * r2))
                x = (x_in - (v - w * vjp) / n).detach()
        return x


def build_head(cfg: HeadConfig, hidden_size: int, chunk_size: int, action_dim: int) -> ActionHead:
    return HEADS.get(cfg.kind)(cfg, hidden_size, chunk_size, action_dim)


class PlanText:
    """Plan text through the backbone's LM head: teacher forcing in training, greedy or
    sampled generation with the KV cache at inference. Holds no weights of its own."""

    @staticmethod
    def loss(
        backbone: Backbone,
        prefix: EncodedPrefix,  # the prefix already run (Backbone.encode_prefix)
        plan_ids: torch.Tensor,  # (B, T): start token, plan tokens, end token, right padding
        plan_mask: torch.Tensor,  # (B, T) 1 = real token
    ) -> torch.Tensor:
        inputs = backbone.embed(plan_ids).to(prefix.embeds.dtype)
        plan_pos = prefix.pos[:, -1:] + plan_mask.cumsum(1).clamp_min(1)
        hidden = backbone.continue_prefix(prefix, inputs, plan_mask, plan_pos)  # (B, T, H)
        logits = backbone.logits(hidden[:, :-1], backbone.text_rows).float()  # (B, T-1, V)
        ce = F.cross_entropy(logits.transpose(1, 2), plan_ids[:, 1:], reduction="none")
        w = plan_mask[:, 1:].float()
        return (ce * w).sum() / w.sum().clamp_min(1.0)

    @staticmethod
    @torch.no_grad()
    def generate(
        backbone: Backbone,
        prefix: torch.Tensor,
        mask: torch.Tensor | None,
        pos: torch.Tensor | None,
        start_id: int,
        end_id: int,
        max_new_tokens: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        b = prefix.shape[0]
        mask, pos = dense_positions(mask, pos, prefix)
        cache = backbone.new_cache()
        start = backbone.embed(torch.full((b, 1), start_id, device=prefix.device)).to(prefix.dtype)
        full_mask, full_pos = extend_positions(mask, pos, 1)
        hidden = backbone(torch.cat([prefix, start], 1), full_mask, full_pos, cache)
        next_pos = full_pos[:, -1:]
        out: list[list[int]] = [[] for _ in range(b)]
        done = torch.zeros(b, dtype=torch.bool, device=prefix.device)
        for _ in range(max_new_tokens):
            logits = backbone.logits(hidden[:, -1], backbone.text_rows).float()  # (B, V)
            if do_sample:
                probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
                tok = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            else:
                tok = logits.argmax(-1, keepdim=True)
            for i in range(b):
                if not done[i] and tok[i, 0].item() != end_id:
                    out[i].append(int(tok[i, 0]))
            done |= tok[:, 0] == end_id
            if bool(done.all()):
                break
            full_mask = torch.cat([full_mask, full_mask.new_ones(b, 1)], dim=1)
            next_pos = next_pos + 1
            hidden = backbone(backbone.embed(tok).to(prefix.dtype), full_mask, next_pos, cache)
        return out
