"""A pretrained vision-language model as a policy's encoder, projector and LLM at once.

One ``transformers`` image-text-to-text model (``AutoModelForImageTextToText``: SmolVLM /
Idefics3, PaliGemma, Qwen2-VL; :mod:`embodied_mm.model.vlm_families`) replaces the separate
vision tower, input projector and causal LM of the other recipes. Its prompt keeps the
model's own layout: the ``vlm_prompt`` processor step
(:mod:`embodied_mm.processor.vlm_prompt`) wraps the instruction ids in the family's chat
format with one run of image placeholder tokens per camera, and :meth:`VLMBackbone.embed_prompt`
puts the model's own image embeddings (its vision tower + projector/connector, on pixels at
its own size and normalisation) in place of the placeholders, as the model's forward does.
The policy appends its proprio tokens, and the heads drive the model's language decoder
through ``inputs_embeds`` exactly as they drive a plain LM (:class:`VLMBackbone` is a
:class:`~embodied_mm.model.backbone.Backbone`).

Qwen2-VL's rotary positions are 3-D (time, row, column of each image token). The heads pass
1-D positions counting real tokens; since every sample's prompt starts with the same
template, the 3-D positions of the template are one fixed table and later tokens are their
1-D position plus a constant (:meth:`VLMBackbone.mrope_positions`), which is what the model's
``get_rope_index`` computes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from embodied_mm.model.backbone import Backbone
from embodied_mm.model.config_io import Checked, ConfigError, Rule, at_least, fraction, registered
from embodied_mm.model.vlm_families import VLM_FAMILIES, VLMFamily

_DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


@dataclass
class VLMConfig(Checked):
    """The VLM of a ``vlm`` policy: a hub name / local directory, or an architecture
    (``hf_config``, random weights). The other fields are the options its users rely on."""

    family: str = "smolvlm"  # a VLM_FAMILIES name
    pretrained: str | None = None  # hub name or local directory (model + its processor)
    # Input size of camera images; None = the model's own (its vision config), filled when built.
    image_size: int | None = None
    image_mean: list[float] | None = None  # None = the model's image processor's, else the family's
    image_std: list[float] | None = None
    keep_layers: int | None = None  # keep only the first N LM layers (SmolVLA keeps 16)
    freeze_vision: bool = False  # the vision encoder's weights stay fixed
    lora_rank: int = 0  # > 0: LoRA adapters on the LM (peft); its base weights are frozen
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None  # LM module names; None = q/k/v/o projections
    gradient_checkpointing: bool = False
    # Id of the first token reserved after the text vocabulary (discrete action bins), filled
    # when built.
    extra_token_offset: int | None = None
    # The model's full transformers config: an architecture to build with random weights, or
    # filled when built so that a saved policy rebuilds offline.
    hf_config: dict[str, Any] | None = None

    RULES: ClassVar[dict[str, Rule]] = {
        "family": registered(lambda: VLM_FAMILIES.names()),
        **dict.fromkeys(("image_size", "keep_layers", "lora_alpha"), at_least(1)),
        "lora_rank": at_least(0),
        "lora_dropout": fraction(),
        "extra_token_offset": at_least(0),
    }


def add_prompt_tokens(tokenizer: Any, family: str) -> Any:
    """The family's prompt tokens added to ``tokenizer`` where missing (tiny recipes start
    from the shipped tokenizer; a pretrained VLM's tokenizer has them all)."""
    fam = VLM_FAMILIES.get(family)
    vocab = tokenizer.get_vocab()
    missing = [t for t in fam.special_tokens if t not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    return tokenizer


def _model_config(cfg: VLMConfig, fam: VLMFamily, image_token_id: int) -> Any:
    from transformers import AutoConfig

    data = copy.deepcopy(cfg.hf_config)
    assert data is not None
    data.setdefault("image_token_id", image_token_id)
    try:
        return AutoConfig.for_model(**data)
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(("vlm", "hf_config"), f"not a transformers config: {err}") from None


def _load_model(cfg: VLMConfig, fam: VLMFamily, image_token_id: int) -> nn.Module:
    from transformers import AutoConfig, AutoModelForImageTextToText

    if cfg.hf_config is not None:  # an architecture, or a saved policy (weights come later)
        hf_cfg = _model_config(cfg, fam, image_token_id)
        if hf_cfg.model_type not in fam.model_types:
            raise ConfigError(
                ("vlm", "hf_config", "model_type"),
                f"expected {' or '.join(fam.model_types)} (family {cfg.family!r}), "
                f"got {hf_cfg.model_type!r}",
            )
        return AutoModelForImageTextToText.from_config(hf_cfg, dtype=torch.float32)
    if cfg.pretrained is None:
        raise ConfigError(("vlm",), "set pretrained (hub name or directory) or hf_config")
    hf_cfg = AutoConfig.from_pretrained(cfg.pretrained)
    if hf_cfg.model_type not in fam.model_types:
        raise ConfigError(
            ("vlm", "pretrained"),
            f"{cfg.pretrained} is a {hf_cfg.model_type!r} model; family {cfg.family!r} "
            f"takes {', '.join(fam.model_types)}",
        )
    return AutoModelForImageTextToText.from_pretrained(cfg.pretrained, dtype=torch.float32)


def _pixel_stats(cfg: VLMConfig, fam: VLMFamily) -> tuple[list[float], list[float]]:
    """The image processor's mean/std for a pretrained model, else the family's."""
    mean, std = list(fam.mean), list(fam.std)
    if cfg.pretrained is not None and cfg.hf_config is None:
        from transformers import AutoImageProcessor

        try:
            proc = AutoImageProcessor.from_pretrained(cfg.pretrained)
            mean, std = [float(v) for v in proc.image_mean], [float(v) for v in proc.image_std]
        except (OSError, ValueError, AttributeError, TypeError):
            pass  # a model directory without its processor: the family's values
    return list(cfg.image_mean or mean), list(cfg.image_std or std)


def _truncate(model: nn.Module, decoder: nn.Module, keep: int) -> None:
    """Keep the first ``keep`` decoder layers, in the model and in its config."""
    text_cfg = model.config.get_text_config()
    layers = decoder.layers
    if keep > len(layers):
        raise ConfigError(
            ("vlm", "keep_layers"), f"expected ≤ {len(layers)} (the LM's layers), got {keep}"
        )
    decoder.layers = nn.ModuleList(list(layers)[:keep])
    text_cfg.num_hidden_layers = keep
    if getattr(text_cfg, "layer_types", None):
        text_cfg.layer_types = list(text_cfg.layer_types)[:keep]


def _causal(model: nn.Module, decoder: nn.Module) -> None:
    """The LM attends causally. PaliGemma's config asks for bidirectional attention (its
    pretraining attends image and prompt as one prefix block, with a mask its own forward
    builds); the heads drive the LM with causal masks and a KV cache like any other, and with
    a bidirectional LM a padded prompt would change what an unpadded one sees."""
    text_cfg = model.config.get_text_config()
    if getattr(text_cfg, "use_bidirectional_attention", False):
        text_cfg.use_bidirectional_attention = False
        for module in decoder.modules():
            if hasattr(module, "is_causal"):
                module.is_causal = True


class VLMBackbone(Backbone):
    """A transformers VLM seen as the heads see a backbone (token embeddings in, hidden
    states out, LM-head rows on demand), plus the model's own image path."""

    def __init__(self, cfg: VLMConfig, tokenizer: Any, cameras: int, extra_tokens: int = 0):
        """``tokenizer``: with the family's prompt tokens (:func:`add_prompt_tokens`);
        ``cameras``: images per prompt; ``extra_tokens``: ids reserved after the text
        vocabulary (the discrete head's bins), from ``cfg.extra_token_offset``."""
        nn.Module.__init__(self)
        fam = VLM_FAMILIES.get(cfg.family)
        self.family = fam
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(fam.image_token))
        model = _load_model(cfg, fam, self.image_token_id)
        configured = getattr(model.config, "image_token_id", None)
        if configured is not None and int(configured) != self.image_token_id:
            raise ConfigError(
                ("vlm",),
                f"the model's image_token_id {configured} is not the tokenizer's "
                f"{fam.image_token!r} ({self.image_token_id}): use the model's own tokenizer",
            )
        text_vocab = len(tokenizer)
        if cfg.extra_token_offset is None:
            rows = model.get_input_embeddings().num_embeddings
            cfg.extra_token_offset = max(text_vocab, rows) if cfg.pretrained else text_vocab
        needed = cfg.extra_token_offset + extra_tokens
        if model.get_input_embeddings().num_embeddings < needed:
            model.resize_token_embeddings(needed, mean_resizing=False)
        decoder = model.get_decoder()
        _causal(model, decoder)
        if cfg.keep_layers is not None and cfg.keep_layers != len(decoder.layers):
            _truncate(model, decoder, cfg.keep_layers)

        vision_cfg = model.config.vision_config
        size = cfg.image_size or getattr(vision_cfg, "image_size", None) or fam.default_image_size
        cfg.image_size = int(size)
        self.image_tokens = int(fam.tokens_per_image(model.config, cfg.image_size))
        patch = int(vision_cfg.patch_size)
        if cfg.image_size % patch or self.image_tokens < 1:
            raise ConfigError(
                ("vlm", "image_size"),
                f"expected a multiple of the vision patch ({patch}) giving whole image tokens, "
                f"got {cfg.image_size}",
            )
        cfg.image_mean, cfg.image_std = _pixel_stats(cfg, fam)

        if cfg.freeze_vision:
            self.vision_encoder(model).requires_grad_(False)
        if cfg.lora_rank > 0:
            from peft import LoraConfig, inject_adapter_in_model

            lora = LoraConfig(
                r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                target_modules=cfg.lora_targets or _DEFAULT_LORA_TARGETS,
            )  # fmt: skip
            inject_adapter_in_model(lora, decoder)
            for part in (decoder, model.get_input_embeddings(), model.get_output_embeddings()):
                for name, p in part.named_parameters():
                    p.requires_grad_("lora_" in name)
        if cfg.gradient_checkpointing:
            kwargs = {"use_reentrant": False}  # works with inputs_embeds that need no grad
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)

        cfg.hf_config = {k: v for k, v in model.config.to_dict().items() if not k.startswith("_")}
        self.cfg = cfg  # type: ignore[assignment]  # text_rows reads extra_token_offset
        self.lm = model
        self.decoder = decoder
        self.hidden_size = int(model.config.get_text_config().hidden_size)
        self.vocab_size = model.get_input_embeddings().num_embeddings
        self.cameras = cameras
        self._cache_kw = "cache"
        self.prefix_text, self.suffix_text = fam.prompt(tokenizer, self.image_tokens, cameras)
        self.prefix_ids = tokenizer(self.prefix_text, add_special_tokens=False)["input_ids"]
        self.suffix_ids = tokenizer(self.suffix_text, add_special_tokens=False)["input_ids"]
        found = self.prefix_ids.count(self.image_token_id)
        if found != cameras * self.image_tokens:
            raise ValueError(
                f"the {cfg.family} prompt has {found} image tokens; expected "
                f"{cameras} cameras × {self.image_tokens}"
            )
        slots = [i for i, t in enumerate(self.prefix_ids) if t == self.image_token_id]
        self.register_buffer("image_slots", torch.tensor(slots), persistent=False)  # (C·T,)
        self.mrope_table: torch.Tensor | None
        self.register_buffer("mrope_table", None, persistent=False)
        self.mrope_delta = 0
        if fam.mrope:
            self.mrope_table, self.mrope_delta = self._template_positions(model)  # (3, P0)

    @staticmethod
    def vision_encoder(model: nn.Module) -> nn.Module:
        """The vision tower without its projector/connector."""
        inner = model.model
        for name in ("vision_model", "vision_tower", "visual"):
            if hasattr(inner, name):
                tower = getattr(inner, name)
                if name == "visual":  # Qwen2-VL's merger is its projector
                    return nn.ModuleList([tower.patch_embed, tower.blocks])
                return tower
        raise TypeError(f"no vision tower found in {type(model).__name__}")

    @staticmethod
    def vision_projector(model: nn.Module) -> nn.Module:
        """The projector / connector from the vision tower into the LM (what the align stage
        trains)."""
        inner = model.model
        for name in ("connector", "multi_modal_projector"):
            if hasattr(inner, name):
                return getattr(inner, name)
        if hasattr(inner, "visual"):
            return inner.visual.merger
        raise TypeError(f"no vision projector found in {type(model).__name__}")

    # ------------------------------------------------------------------ images and prompt
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels (N, 3, S, S) → the model's image embeddings (N, T, H)."""
        return self.family.encode(self.lm, pixels)

    def embed_prompt(
        self, images: list[torch.Tensor], ids: torch.Tensor, padded: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``images[c]`` (B, 3, S, S) per camera, ``ids`` (B, L) the ``vlm_prompt`` ids (one
        run of placeholders per camera, in camera order) → the prompt's embeddings (B, L, H)
        with the image embeddings in the placeholders, and those embeddings (B, C, T, H).
        ``padded=False`` (no row is padded): the placeholders sit where the template has them."""
        b, c = ids.shape[0], len(images)
        feats = self.encode_images(torch.cat(images, 0))  # (C·B, T, H), camera-major
        feats = feats.view(c, b, *feats.shape[1:]).transpose(0, 1)  # (B, C, T, H)
        text = self.embed(ids)  # (B, L, H)
        flat = feats.reshape(b, -1, feats.shape[-1]).to(text.dtype)  # (B, C·T, H)
        if not padded:  # the batch-1 control loop: one copy into the template's slots
            return text.index_copy(1, self.image_slots, flat), feats
        is_image = ids == self.image_token_id  # (B, L)
        # the k-th placeholder of a row takes its k-th image embedding
        slot = (is_image.long().cumsum(1) - 1).clamp(0, flat.shape[1] - 1)  # (B, L)
        picked = flat.gather(1, slot.unsqueeze(-1).expand(-1, -1, flat.shape[-1]))
        return torch.where(is_image.unsqueeze(-1), picked, text), feats

    # ------------------------------------------------------------------ positions
    def _template_positions(self, model: nn.Module) -> tuple[torch.Tensor, int]:
        """The 3-D positions (3, P0) of the prompt template before the instruction, by the
        model's own ``get_rope_index``, and the offset of the 1-D positions after it."""
        ids = torch.tensor([self.prefix_ids])  # (1, P0)
        kinds = (ids == self.image_token_id).int()  # 1 = image token
        g = int(self.lm.config.vision_config.patch_size)
        side = self.cfg.image_size // g
        grid = torch.tensor([[1, side, side]] * self.cameras)
        pos, _ = model.model.get_rope_index(ids, kinds, image_grid_thw=grid)  # (3, 1, P0)
        table = pos[:, 0]
        return table, int(table.max()) + 1 - table.shape[1]

    def mrope_positions(
        self, position_ids: torch.Tensor | None, embeds: torch.Tensor, cache: Any
    ) -> torch.Tensor:
        """1-D positions (B, T) (None: the default ones after the cache) → 3-D (3, B, T)."""
        assert self.mrope_table is not None
        b, t = embeds.shape[:2]
        if position_ids is None:
            past = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(past, past + t, device=embeds.device).expand(b, t)
        p0 = self.mrope_table.shape[1]
        in_template = self.mrope_table[:, position_ids.clamp(max=p0 - 1)]  # (3, B, T)
        after = (position_ids + self.mrope_delta).unsqueeze(0)  # (1, B, T)
        return torch.where(position_ids.unsqueeze(0) < p0, in_template, after)

    def decode(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
    ) -> torch.Tensor:
        if self.mrope_table is not None:
            position_ids = self.mrope_positions(position_ids, embeds, cache)
        return super().decode(embeds, attention_mask, position_ids, cache)
