"""The vision-language-action policy, top to bottom: encoders → projectors → LLM backbone →
action head / plan. (Its config: :mod:`~embodied_mm.model.configuration_vla`; on disk:
:mod:`~embodied_mm.model.pretrained`.)

One control step builds a prefix of backbone tokens::

    [task text (left-padded)] [camera 1 tokens] ... [camera C tokens] [state tokens]

(a VLM policy, :mod:`embodied_mm.model.vlm`: ``[the VLM's prompt, its image tokens in
place (left-padded)] [state tokens]``) and an action head continues it (see
:mod:`embodied_mm.model.heads`). Left padding keeps
every sample's image, state and action tokens at the same columns, so the discrete head and
plan generation step the whole batch together; explicit position ids (counting only real
tokens) make each sample's result independent of the others' text lengths.

Observations reach the networks through the policy's processor pipeline
(:mod:`embodied_mm.processor`: input checks, tokenisation, camera pixels, normalisation and
its inverse), saved with the checkpoint; the networks themselves take tensors only
(:meth:`VLAPolicy.prefix_from_tensors`, :meth:`VLAPolicy.predict_normalized`).

The API below is a contract the runtime, training and deployment code relies on.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from embodied_mm.features import ACTION, FINAL_STATE, OBS_STATE, PLAN, WAYPOINT_KEYS, image_key
from embodied_mm.model import pretrained
from embodied_mm.model.augment import random_token_swap
from embodied_mm.model.backbone import Backbone
from embodied_mm.model.config_io import ConfigError
from embodied_mm.model.configuration_vla import PolicyConfig
from embodied_mm.model.encoders import VISION_FAMILIES, MultiCameraVision, ProprioEncoder
from embodied_mm.model.film import InstructionSummary
from embodied_mm.model.heads import (
    HEADS,
    Committed,
    DiscreteHead,
    PlanText,
    build_head,
    dense_positions,
)
from embodied_mm.model.normalize import Normalizer, Stats, unit_stats
from embodied_mm.model.projectors import build_projector
from embodied_mm.processor.core import Pipeline, Resources
from embodied_mm.processor.normalize import Normalize
from embodied_mm.processor.policy_processor import PolicyProcessor, policy_pipeline
from embodied_mm.processor.robots import goal_dims_of
from embodied_mm.processor.tokenize import TOKENS, TOKENS_MASK


class VLAPolicy(nn.Module):
    """A multimodal LLM as a robot policy (see the module docstring for the token layout)."""

    def __init__(
        self,
        config: PolicyConfig,
        stats: Stats | None = None,
        tokenizer: Any = None,
        device: str | torch.device | None = None,
        processor: Pipeline | None = None,
        state_names: list[str] | None = None,
    ) -> None:
        """``stats``: LeRobot-style feature stats; None uses unit stats (actions bounded to
        [-1, 1], state unscaled). ``tokenizer``: a transformers tokenizer; None loads the one
        ``config.tokenizer`` names. ``processor``: the saved pipeline (``processor.json``);
        None builds the one ``config`` implies (:func:`policy_pipeline`), recording
        ``state_names``, the state layout of the training data (see
        :func:`embodied_mm.processor.robots.state_names_of`)."""
        super().__init__()
        # Building fills in the resolved HF configs; copy so the caller's config stays reusable.
        config = copy.deepcopy(config)
        if config.head.kind not in HEADS:
            HEADS.get(config.head.kind)  # raises with the known names
        self.config = config
        vlm = config.vlm
        if tokenizer is None:
            own = config.backbone.pretrained if vlm is None else vlm.pretrained
            source = config.tokenizer or own or pretrained.shipped_tokenizer_dir()
            tokenizer = pretrained.load_tokenizer(source)
        if vlm is not None:
            from embodied_mm.model.vlm import add_prompt_tokens

            tokenizer = add_prompt_tokens(tokenizer, vlm.family)
        self.tokenizer = tokenizer
        ids = {
            "pad": tokenizer.pad_token_id,
            "bos": tokenizer.bos_token_id,
            "eos": tokenizer.eos_token_id,
        }
        if ids["eos"] is None:
            raise ValueError("the tokenizer needs an end-of-sequence token to end plans")
        self.eos_id = int(ids["eos"])
        self.plan_start_id = int(ids["bos"] if ids["bos"] is not None else ids["eos"])
        self.pad_id = int(ids["pad"] if ids["pad"] is not None else ids["eos"])

        head_cls = HEADS.get(config.head.kind)
        extra = head_cls.extra_tokens(config.head)
        # A VLM is encoder, projector and LLM at once (model/vlm.py): no tower or projector.
        self.vision: MultiCameraVision | None = None
        self.projector: nn.Module | None = None
        self.film_text: InstructionSummary | None = None
        if vlm is not None:
            from embodied_mm.model.vlm import VLMBackbone

            self.backbone: Backbone = VLMBackbone(vlm, tokenizer, len(config.cameras), extra)
            hidden = self.backbone.hidden_size
            visual_tokens, visual_dim = self.backbone.image_tokens, hidden
        else:
            self.backbone = Backbone(config.backbone, len(tokenizer), extra)
            hidden = self.backbone.hidden_size
            self.vision = MultiCameraVision(
                config.vision, config.cameras, config.shared_tower, cond_dim=hidden
            )
            self.projector = build_projector(config.projector, self.vision.hidden_size, hidden)
            if config.vision.film:
                # what FiLM reads of the instruction (B, L, H) → (B, H)
                self.film_text = InstructionSummary(
                    config.vision.film_text, hidden, config.max_text_tokens
                )
            visual_tokens, visual_dim = self.vision.tokens_per_camera, self.vision.hidden_size
        self.proprio = ProprioEncoder(config.proprio, config.state_dim, hidden)
        self.head = build_head(config.head, hidden, config.chunk_size, config.action_dim)
        self.goal_head: nn.Module | None = None
        if processor is not None:
            check = processor.find("observation_check")
            state_names = None if check is None else check.params.state_names
        if config.goal_loss_weight > 0:
            # None: the robot layout's goal dims (processor/robots), else every dim
            dims = config.goal_dims
            if dims is None:
                dims = goal_dims_of(state_names) or list(range(config.state_dim))
            self.goal_dims = [int(d) for d in dims]
            bad = [d for d in self.goal_dims if not 0 <= d < config.state_dim]
            if bad or not self.goal_dims:
                raise ValueError(
                    f"goal_dims must be state dims in [0, {config.state_dim}); got {dims}"
                )
            n_visual = len(config.cameras) * visual_tokens * visual_dim
            self.goal_head = nn.Sequential(
                nn.Linear(n_visual, hidden),
                nn.GELU(),
                nn.Linear(hidden, len(self.goal_dims) * len(config.goal_waypoints)),
            )
        self.goal_in: nn.Module | None = None
        if config.goal_input:
            if self.goal_head is None:
                raise ConfigError(  # a usage error: the command line prints it as one line
                    (), "goal_input feeds the goal head's waypoints: set goal_loss_weight > 0"
                )
            n_goal = self.goal_head[-1].out_features  # W*G
            self.goal_in = nn.Linear(n_goal, hidden)  # (B, W*G) waypoints → one (B, H) token
        if isinstance(self.head, DiscreteHead):
            self.head.token_offset = int(self.backbone.cfg.extra_token_offset)

        if stats is None:
            dims = {OBS_STATE: config.state_dim, ACTION: config.action_dim}
            stats = {k: unit_stats(d) for k, d in dims.items()}
        resources = Resources(stats, tokenizer.backend_tokenizer)
        if processor is None and vlm is not None:
            from embodied_mm.processor.vlm_prompt import VLMPromptParams, vlm_pipeline

            prompt = VLMPromptParams(
                int(config.max_text_tokens), self.pad_id, self.backbone.image_token_id,
                list(self.backbone.prefix_ids), list(self.backbone.suffix_ids),
            )  # fmt: skip
            processor = vlm_pipeline(config, resources, prompt, state_names)
        if processor is None:
            family = VISION_FAMILIES.get(config.vision.family)
            processor = policy_pipeline(
                config, resources, self.pad_id, family.mean, family.std, state_names
            )
        self.processor = PolicyProcessor(processor)
        # Whether this policy was trained on frames with a sub-task label (``plan``) beside
        # their actions: set by compute_loss, saved in config.json (``trained_with_plans``),
        # and what decides whether demo/rollout/eval/deploy ask it for plans by default.
        # Caption-only batches (alignment) do not count: they teach descriptions, not plans.
        self.trained_with_plans = False
        self._image_keys = [image_key(c) for c in config.cameras]  # the camera embeddings' order
        self.processor_steps = self.processor.modules  # follow the policy across devices
        self.to(device or pretrained.default_device())

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return self._device

    def _apply(self, fn, *args, **kwargs):  # type: ignore[override]
        # Every .to()/.cuda()/.half() goes through here: cache the device once instead of
        # walking the parameters on each of the hot path's several lookups.
        out = super()._apply(fn, *args, **kwargs)
        self._device = next(self.parameters()).device
        return out

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def normalizer(self) -> Normalizer:
        """The normalisation of the processor's ``normalize`` step (its stats, modes, action
        bounds)."""
        return self.processor.step(Normalize).normalizer

    def preprocess(self, obs: dict[str, Any]) -> dict[str, Any]:
        """A raw observation (LeRobot keys; training batches also ``action`` ...) → the
        model's input tensors on the policy's device (see :mod:`embodied_mm.processor`)."""
        return self.processor.preprocess(obs, self.device)

    def _encode_plans(self, plans: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Plans → right-padded [start, tokens..., end] ids (B, T) and mask (B, T)."""
        rows = []
        for plan in plans:
            ids = self.tokenizer(plan, add_special_tokens=False)["input_ids"]
            rows.append([self.plan_start_id, *ids[: self.config.max_plan_tokens], self.eos_id])
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids.to(self.device), mask.to(self.device)

    def prefix_from_inputs(
        self, inputs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """:meth:`prefix_from_tensors` of a preprocessed batch, plus the image features."""
        images = [inputs[k] for k in self._image_keys]
        return self._embed(images, inputs[OBS_STATE], inputs[TOKENS], inputs[TOKENS_MASK])

    def prefix_from_tensors(
        self,
        images: list[torch.Tensor],  # per camera, normalised pixels (B, 3, S, S)
        state: torch.Tensor,  # (B, S) normalised
        text_ids: torch.Tensor,  # (B, L) left-padded instruction ids
        text_mask: torch.Tensor | None,  # (B, L) 1 = real token; None = nothing padded
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Embedded prefix (B, P, H), attention mask (B, P) and position ids (B, P) from the
        processor's output tensors (no tokenizer, no checks); mask and positions are None
        when no sample is padded. What ONNX export traces."""
        embeds, mask, pos, _ = self._embed(images, state, text_ids, text_mask)
        return embeds, mask, pos

    def _embed(
        self,
        images: list[torch.Tensor],
        state: torch.Tensor,
        text_ids: torch.Tensor,
        text_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """:meth:`prefix_from_tensors` plus the image features (B, C, N, Dv) it embedded."""
        b = state.shape[0]
        if self.vision is None:  # a VLM: its prompt holds the image tokens (model/vlm.py)
            text, feats = self.backbone.embed_prompt(images, text_ids, text_mask is not None)
            # text (B, L, H), feats (B, C, N, H)
            prop = self.proprio(state).to(text.dtype)  # (B, Ts, H)
            embeds = torch.cat([text, prop], dim=1)  # (B, P, H)
        else:
            if self.training and self.config.text_token_noise > 0:
                text_ids = random_token_swap(
                    text_ids, text_mask, self.config.text_token_noise, self.backbone.text_rows.stop
                )
            text = self.backbone.embed(text_ids)  # (B, L, H)
            cond = None if self.film_text is None else self.film_text(text, text_mask)  # (B, H)
            feats = self.vision(images, cond)  # (B, C, N, Dv)
            c, n = feats.shape[1], feats.shape[2]
            # The projector sees one image at a time: a resampler gives a fixed count per camera.
            assert self.projector is not None
            vis = self.projector(feats.reshape(b * c, n, -1))  # (B*C, N', H)
            vis = vis.reshape(b, -1, vis.shape[-1])  # (B, C*N', H)
            prop = self.proprio(state)  # (B, Ts, H)
            dtype = text.dtype
            embeds = torch.cat([text, vis.to(dtype), prop.to(dtype)], dim=1)  # (B, P, H)
        if self.goal_in is not None:
            embeds = torch.cat([embeds, self._goal_token(feats).to(embeds.dtype)], dim=1)
        if text_mask is None:  # no padding anywhere: default causal attention is exact
            return embeds, None, None, feats
        mask = torch.cat([text_mask, text_mask.new_ones(b, embeds.shape[1] - text.shape[1])], 1)
        pos = (mask.cumsum(1) - 1).clamp_min(0)
        return embeds, mask, pos, feats

    def _goal_token(self, feats: torch.Tensor) -> torch.Tensor:
        """The goal head's waypoints from image features (B, C, N, Dv), detached and embedded
        as one prefix token (B, 1, H) (``goal_input``)."""
        assert self.goal_head is not None and self.goal_in is not None
        goals = self.goal_head(feats.flatten(1).float()).detach()  # (B, W*G) normalised
        return self.goal_in(goals).unsqueeze(1)

    # ------------------------------------------------------------------ the API
    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of one batch (``action`` (B, K, D) in robot units; optional
        ``action_is_pad`` (B, K) bool and ``plan`` list[str] where "" is unlabelled).

        A batch with ``plan`` text but no ``action`` trains the text path alone: alignment
        pre-training feeds frame captions this way (``embodied_mm.train.captions``). One with
        ``episode_final_state`` but neither trains the goal head alone (grounding stage)."""
        plans = batch.get(PLAN)
        labelled = [i for i, p in enumerate(plans or []) if p]
        goal_only = self.goal_head is not None and FINAL_STATE in batch
        if ACTION not in batch and not labelled and not goal_only:
            raise KeyError(
                f"training batch lacks {ACTION!r} and {PLAN!r} text; found keys {sorted(batch)}"
            )
        self._check_action(batch)
        inputs = self.preprocess(batch)  # actions and the final state normalised too
        with self._autocast():
            prefix, mask, pos, feats = self.prefix_from_inputs(inputs)
            loss = prefix.new_zeros((), dtype=torch.float32)
            metrics: dict[str, float] = {}
            if ACTION in batch or labelled:
                # the prefix runs once; the action queries and the plan text continue it
                encoded = self.backbone.encode_prefix(prefix, *dense_positions(mask, pos, prefix))
            if ACTION in batch:
                target, valid = self._action_target(inputs)
                loss, metrics = self.head.loss(self.backbone, encoded, target, valid)
            if self.goal_head is not None:
                goal_loss = self._goal_loss(inputs, feats)
                loss = loss + self.config.goal_loss_weight * goal_loss
                metrics["goal_mse"] = goal_loss.item()
            if labelled:
                if ACTION in batch:
                    self.trained_with_plans = True
                idx = torch.tensor(labelled, device=self.device)
                plan_ids, plan_mask = self._encode_plans([plans[i] for i in labelled])
                plan_loss = PlanText.loss(self.backbone, encoded.select(idx), plan_ids, plan_mask)
                loss = loss + self.config.plan_loss_weight * plan_loss
                metrics["plan_ce"] = plan_loss.item()
        metrics["loss"] = loss.item()
        return loss, metrics

    def _goal_loss(self, batch: dict[str, Any], feats: torch.Tensor) -> torch.Tensor:
        """MSE of the goal head's (normalised) waypoint states (``goal_waypoints``: the
        episode's end, the end of its first phase), their ``goal_dims``, from ``feats``
        (B, C, N, Dv)."""
        keys = [WAYPOINT_KEYS[w] for w in self.config.goal_waypoints]
        missing = [k for k in keys if k not in batch]
        if missing:
            raise KeyError(
                f"goal_loss_weight > 0 needs {missing} in the batch (the window dataset "
                f"gives them with final_state=True); found keys {sorted(batch)}"
            )
        # (B, W*G): each waypoint's state (B, S), normalised like the state, at goal_dims
        target = torch.cat([batch[k][:, self.goal_dims] for k in keys], dim=1)
        assert self.goal_head is not None
        pred = self.goal_head(feats.flatten(1).float())  # (B, W*G)
        return F.mse_loss(pred, target)

    def _check_action(self, batch: dict[str, Any]) -> None:
        if ACTION not in batch:
            return
        k, d = self.config.chunk_size, self.config.action_dim
        shape = tuple(batch[ACTION].shape)
        if len(shape) != 3 or shape[1:] != (k, d):
            raise ValueError(f"{ACTION} must be (B, {k}, {d}); got {shape}")

    def _action_target(self, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised action chunk (B, K, D) and its validity mask (B, K)."""
        actions = inputs[ACTION]
        pad = inputs.get(f"{ACTION}_is_pad")
        valid = (
            torch.ones(actions.shape[:2], dtype=torch.bool, device=self.device)
            if pad is None
            else ~pad.to(torch.bool)
        )
        return actions, valid

    @torch.inference_mode()
    def predict_chunk(
        self,
        obs: dict[str, Any],
        prefix: torch.Tensor | None = None,
        delay: torch.Tensor | int | None = None,
        overlap: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Action chunk (B, K, D) in robot units (float32, on the policy's device), inside the
        action bounds of the stats. Call ``eval()`` first when the model has dropout.

        Real-time chunking: ``prefix`` (B, L, D) robot units, the actions already committed
        for the chunk's first L steps, of which the first ``delay`` (B,) (or one int for all)
        execute while this chunk is computed; ``overlap`` (B,) how many of the L rows are
        real (default all). The chunk then continues them: a ``chunk`` head trained with
        ``rtc_max_delay`` returns the first ``delay`` actions exactly as given, a ``flow``
        head guides its Euler steps towards them (close, not exact; see
        :attr:`rtc_max_delay`)."""
        committed = None if prefix is None else self._committed(prefix, delay, overlap)
        chunk = self.processor.postprocess(
            self.predict_normalized(self.preprocess(obs), committed)
        )  # (B, K, D)
        if prefix is not None and self.head.exact_prefix:
            # exactly the given robot units (not their normalised round trip)
            k = chunk.shape[1]
            frozen = committed.frozen(k)[..., None]  # (B, K, 1)
            given = torch.as_tensor(prefix).to(chunk)[:, :k]  # (B, min(L, K), D)
            given = torch.cat([given, chunk[:, given.shape[1] :]], dim=1)  # (B, K, D)
            chunk = torch.where(frozen, given, chunk)
        return chunk

    @property
    def rtc_max_delay(self) -> int:
        """The largest delay (steps) :meth:`predict_chunk` continues a ``prefix`` for; 0 when
        this policy cannot (a chunk head trained without ``--rtc-max-delay``, discrete)."""
        return self.head.rtc_max_delay

    def _committed(
        self,
        prefix: torch.Tensor,
        delay: torch.Tensor | int | None,
        overlap: torch.Tensor | None,
    ) -> Committed:
        """The robot-unit ``prefix`` (B, L, D) normalised as actions, with its counts."""
        prefix = torch.as_tensor(prefix, dtype=torch.float32, device=self.device)
        b, n = prefix.shape[:2]
        if prefix.ndim != 3 or prefix.shape[2] != self.config.action_dim:
            raise ValueError(
                f"prefix must be (B, L, {self.config.action_dim}); got {tuple(prefix.shape)}"
            )

        def counts(value: torch.Tensor | int | None, default: int) -> torch.Tensor:
            value = default if value is None else value
            return torch.as_tensor(value, dtype=torch.long, device=self.device).expand(b).clone()

        overlap_t = counts(overlap, n)
        delay_t = counts(delay, n)
        if (delay_t < 0).any() or (delay_t > overlap_t).any() or (overlap_t > n).any():
            raise ValueError(
                f"need 0 <= delay <= overlap <= {n} (the prefix rows); got delay "
                f"{delay_t.tolist()}, overlap {overlap_t.tolist()}"
            )
        actions = self.normalizer.normalize(ACTION, prefix)  # (B, L, D)
        return Committed(actions, delay_t, overlap_t)

    @torch.inference_mode()
    def predict_normalized(
        self, inputs: dict[str, Any], committed: Committed | None = None
    ) -> torch.Tensor:
        """Normalised action chunk (B, K, D) (in [-1, 1] for bounded modes) of preprocessed
        inputs (:meth:`preprocess`): the networks alone. ``committed``: see
        :meth:`predict_chunk` (normalised)."""
        with self._autocast():
            prefix, mask, pos, _ = self.prefix_from_inputs(inputs)
            chunk = self.head.predict(self.backbone, prefix, mask, pos, committed)
            return chunk.float()  # (B, K, D)

    @torch.inference_mode()
    def generate_plan(
        self,
        obs: dict[str, Any],
        max_new_tokens: int = 32,
        do_sample: bool = False,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """Sub-task text per sample, greedy or sampled through the LM head."""
        inputs = self.preprocess(obs)
        with self._autocast():
            prefix, mask, pos, _ = self.prefix_from_inputs(inputs)
            ids = PlanText.generate(
                self.backbone, prefix, mask, pos, self.plan_start_id, self.eos_id,
                max_new_tokens, do_sample, temperature, generator,
            )  # fmt: skip
        return [self.tokenizer.decode(r, skip_special_tokens=True) for r in ids]

    @torch.inference_mode()
    def predict_goals(self, obs: dict[str, Any]) -> torch.Tensor:
        """The goal head's waypoints (B, W, G) in robot units: for each of ``goal_waypoints``
        (W), the state at ``goal_dims`` (G) it predicts from the images (trained on each
        episode's first frame: :mod:`embodied_mm.eval.goal_error` scores it). Call ``eval()``
        first.

        Raises:
            ValueError: the policy has no goal head (trained with ``goal_loss_weight`` 0).
        """
        if self.goal_head is None:
            raise ValueError(
                "this policy has no goal head (it was trained with goal_loss_weight 0)"
            )
        with self._autocast():
            feats = self.prefix_from_inputs(self.preprocess(obs))[3]  # (B, C, N, Dv)
            pred = self.goal_head(feats.flatten(1).float())  # (B, W*G) normalised
        w, dims = len(self.config.goal_waypoints), self.goal_dims
        state = pred.new_zeros(pred.shape[0] * w, self.config.state_dim)  # (B*W, S)
        state[:, dims] = pred.view(-1, len(dims))
        return self.normalizer.unnormalize(OBS_STATE, state)[:, dims].view(-1, w, len(dims))

    def reset(self) -> None:
        """Start a new episode: drops the processor's cached instruction tokens (the policy
        keeps no other state between calls; action queues live in the runtime). Safe while
        another thread is inside an inference: that inference still encodes its instruction."""
        self.processor.reset()

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``model.safetensors``, ``config.json``, ``stats.json``, ``processor.json`` and
        ``tokenizer/`` (:func:`embodied_mm.model.pretrained.save_pretrained`)."""
        pretrained.save_pretrained(self, directory)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device | None = None
    ) -> VLAPolicy:
        """Rebuild a saved policy offline; a missing, corrupt or truncated file fails with an
        error naming it (:func:`embodied_mm.model.pretrained.from_pretrained`)."""
        return pretrained.from_pretrained(cls, directory, device)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
