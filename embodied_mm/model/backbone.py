"""The LLM backbone: any ``AutoModelForCausalLM`` driven through ``inputs_embeds``.

Fresh tiny backbones are built from a family's config (``qwen2``, ``llama``, ``gpt2``);
pretrained ones load by hub name or local directory. Options: freeze, LoRA through peft,
gradient checkpointing, and a KV cache (a transformers ``Cache`` object) for generation
and for training several suffixes on one prefix (:class:`EncodedPrefix`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from embodied_mm.model.config_io import Checked, Rule, at_least, fraction, registered
from embodied_mm.registry import Registry


@dataclass
class BackboneConfig(Checked):
    family: str = "qwen2"  # a BACKBONE_FAMILIES name; ignored when pretrained is set
    pretrained: str | None = None  # hub name or local directory; None builds a fresh model
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2  # grouped-query attention (qwen2/llama); gpt2 has none
    intermediate_size: int = 128
    max_positions: int = 512
    freeze: bool = False  # freeze every backbone weight (LoRA adapters and `trainable` still train)
    trainable: list[str] = field(default_factory=list)  # name substrings kept trainable when frozen
    lora_rank: int = 0  # > 0 injects LoRA adapters (and freezes the base weights)
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = (
        None  # module names; None uses the family's attention projections
    )
    gradient_checkpointing: bool = False
    # Id of the first token reserved after the text vocabulary (discrete action bins), filled
    # when built.
    extra_token_offset: int | None = None
    # The model's full transformers config, filled when built, so a saved policy rebuilds offline.
    hf_config: dict[str, Any] | None = None

    RULES: ClassVar[dict[str, Rule]] = {
        "family": registered(lambda: BACKBONE_FAMILIES.names()),
        **dict.fromkeys(
            (
                "hidden_size",
                "num_layers",
                "num_heads",
                "num_kv_heads",
                "intermediate_size",
                "max_positions",
            ),
            at_least(1),
        ),
        "lora_rank": at_least(0),
        "lora_alpha": at_least(1),
        "lora_dropout": fraction(),
        "extra_token_offset": at_least(0),
    }


def _qwen2(cfg: BackboneConfig, vocab: int) -> dict[str, Any]:
    return dict(
        model_type="qwen2",
        vocab_size=vocab,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
    )


def _llama(cfg: BackboneConfig, vocab: int) -> dict[str, Any]:
    return {**_qwen2(cfg, vocab), "model_type": "llama"}


def _gpt2(cfg: BackboneConfig, vocab: int) -> dict[str, Any]:
    return dict(
        model_type="gpt2",
        vocab_size=vocab,
        n_embd=cfg.hidden_size,
        n_layer=cfg.num_layers,
        n_head=cfg.num_heads,
        n_inner=cfg.intermediate_size,
        n_positions=cfg.max_positions,
        bos_token_id=None,
        eos_token_id=None,
    )


# family -> function(config, vocab size) -> transformers config kwargs of a fresh model
BACKBONE_FAMILIES: Registry[Callable[[BackboneConfig, int], dict[str, Any]]] = Registry(
    "backbone family"
)
BACKBONE_FAMILIES.register("qwen2", _qwen2)
BACKBONE_FAMILIES.register("llama", _llama)
BACKBONE_FAMILIES.register("gpt2", _gpt2)


@dataclass
class EncodedPrefix:
    """A prefix run once through the backbone, so that each suffix attending to it in
    training (the action queries, the plan text) runs on its keys and values rather than
    recomputing it. Exact: the backbone is causal, no prefix state depends on what follows.

    ``keys_values`` is None where the backbone cannot keep a cache in training (gradient
    checkpointing); the suffixes then run on the whole sequence again.
    """

    embeds: torch.Tensor  # (B, P, H) the prefix tokens, as the backbone took them
    hidden: torch.Tensor  # (B, P, H) the backbone's last hidden states over them
    mask: torch.Tensor  # (B, P) 1 = real token
    pos: torch.Tensor  # (B, P) position ids
    keys_values: list[tuple[torch.Tensor, torch.Tensor]] | None  # per layer, (B, h, P, d) each

    def select(self, rows: torch.Tensor) -> EncodedPrefix:
        """The same prefix for the batch ``rows`` (R,) only."""
        kv = self.keys_values
        return EncodedPrefix(
            self.embeds[rows], self.hidden[rows], self.mask[rows], self.pos[rows],
            None if kv is None else [(k[rows], v[rows]) for k, v in kv],
        )  # fmt: skip


def _cache_tensors(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (keys, values) of a transformers ``DynamicCache``."""
    if hasattr(cache, "layers"):  # transformers >= 4.56
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


_LORA_TARGETS = {"gpt2": ["c_attn", "c_proj"]}
_DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


class Backbone(nn.Module):
    """A causal LM seen as: token embeddings in, hidden states out, LM-head rows on demand."""

    #: training runs the prefix once for all its suffixes (:class:`EncodedPrefix`); False
    #: runs each suffix on its whole sequence (``bench train`` compares the two)
    share_prefix: bool = True

    def __init__(self, cfg: BackboneConfig, text_vocab: int, extra_tokens: int = 0) -> None:
        """``text_vocab``: the tokenizer's size; ``extra_tokens``: ids reserved after the text
        vocabulary (e.g. the discrete head's action bins), starting at ``extra_token_offset``."""
        super().__init__()
        from transformers import AutoConfig, AutoModelForCausalLM

        if (
            cfg.hf_config is not None
        ):  # rebuilding a saved policy: weights come from its safetensors
            lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg.hf_config))
        elif cfg.pretrained is not None:
            lm = AutoModelForCausalLM.from_pretrained(cfg.pretrained)
        else:
            kwargs = BACKBONE_FAMILIES.get(cfg.family)(cfg, text_vocab + extra_tokens)
            lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(**kwargs))
        if cfg.extra_token_offset is None:
            # Pretrained vocabularies are often padded past the tokenizer; append after both.
            if cfg.pretrained is not None:
                cfg.extra_token_offset = max(text_vocab, lm.get_input_embeddings().num_embeddings)
            else:
                cfg.extra_token_offset = text_vocab
        needed = cfg.extra_token_offset + extra_tokens
        if lm.get_input_embeddings().num_embeddings < needed:
            lm.resize_token_embeddings(needed, mean_resizing=False)
        cfg.family = lm.config.model_type
        cfg.hidden_size = int(lm.config.get_text_config().hidden_size)
        cfg.hf_config = {k: v for k, v in lm.config.to_dict().items() if not k.startswith("_")}
        self.cfg = cfg
        self.lm = lm
        self.hidden_size = cfg.hidden_size
        self.vocab_size = lm.get_input_embeddings().num_embeddings

        if cfg.lora_rank > 0:
            from peft import LoraConfig, inject_adapter_in_model

            targets = cfg.lora_targets or _LORA_TARGETS.get(cfg.family, _DEFAULT_LORA_TARGETS)
            lora = LoraConfig(
                r=cfg.lora_rank,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules=targets,
                fan_in_fan_out=cfg.family == "gpt2",  # GPT-2 stores Conv1D weights transposed
            )
            inject_adapter_in_model(lora, self.lm)
        if cfg.freeze or cfg.lora_rank > 0:
            for name, p in self.lm.named_parameters():
                p.requires_grad_("lora_" in name or any(t in name for t in cfg.trainable))
        if cfg.gradient_checkpointing:
            # Non-reentrant checkpointing works with inputs_embeds that need no grad.
            kwargs = {"use_reentrant": False}
            if hasattr(self.lm, "activation_checkpointing_enable"):  # transformers >= 5.x name
                self.lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                self.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        self.decoder = lm.base_model  # the transformer without the LM head
        # transformers renamed `past_key_values` to `cache` in 5.x; accept both.
        params = inspect.signature(self.decoder.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    @property
    def text_rows(self) -> slice:
        """Vocab rows of text tokens: plans never decode to the reserved (action) ids."""
        return slice(0, self.cfg.extra_token_offset)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)  # (B, T, H)

    def new_cache(self) -> Any:
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.lm.config)
        except TypeError:  # transformers 4.x: no config argument
            return DynamicCache()

    def decode(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
    ) -> torch.Tensor:
        """The bare transformer call: hidden states (B, T, H)."""
        out = self.decoder(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=cache is not None,
            **{self._cache_kw: cache},
        )
        return out.last_hidden_state

    def forward(
        self,
        embeds: torch.Tensor,  # (B, T, H)
        attention_mask: torch.Tensor | None,  # (B, T_past + T) 1 = real; None = no padding
        position_ids: torch.Tensor | None,  # (B, T); None = default positions
        cache: Any = None,
    ) -> torch.Tensor:
        """Hidden states (B, T, H); with ``cache`` the cache is extended in place."""
        return self.decode(embeds, attention_mask, position_ids, cache)

    def encode_prefix(
        self,
        prefix: torch.Tensor,  # (B, P, H)
        mask: torch.Tensor,  # (B, P) 1 = real
        pos: torch.Tensor,  # (B, P)
    ) -> EncodedPrefix:
        """Run the prefix once; :meth:`continue_prefix` then runs each suffix on it."""
        if not self.share_prefix or (self.cfg.gradient_checkpointing and self.training):
            # transformers turns the cache off under gradient checkpointing in training
            return EncodedPrefix(prefix, self(prefix, mask, pos), mask, pos, None)
        cache = self.new_cache()
        hidden = self(prefix, mask, pos, cache)
        return EncodedPrefix(prefix, hidden, mask, pos, _cache_tensors(cache))

    def continue_prefix(
        self,
        encoded: EncodedPrefix,
        suffix: torch.Tensor,  # (B, T, H)
        suffix_mask: torch.Tensor,  # (B, T) 1 = real
        suffix_pos: torch.Tensor,  # (B, T)
    ) -> torch.Tensor:
        """Hidden states (B, T, H) of ``suffix`` after the encoded prefix: the same as running
        the whole sequence, without recomputing the prefix."""
        mask = torch.cat([encoded.mask, suffix_mask], dim=1)  # (B, P + T)
        if encoded.keys_values is None:
            embeds = torch.cat([encoded.embeds, suffix], dim=1)
            hidden = self(embeds, mask, torch.cat([encoded.pos, suffix_pos], dim=1))
            return hidden[:, -suffix.shape[1] :]
        cache = self.new_cache()
        for layer, (keys, values) in enumerate(encoded.keys_values):
            cache.update(keys, values, layer)
        return self(suffix, mask, suffix_pos, cache)

    def logits(self, hidden: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """LM-head logits (B, T, V) or only the vocab ``rows`` (cheaper for action bins)."""
        head = self.lm.get_output_embeddings()
        weight = head.weight if rows is None else head.weight[rows]
        bias = getattr(head, "bias", None)
        if bias is not None and rows is not None:
            bias = bias[rows]
        return nn.functional.linear(hidden, weight, bias)
