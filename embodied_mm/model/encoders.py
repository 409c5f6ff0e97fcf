"""Modality encoders: vision towers (SigLIP, CLIP, DINOv2 and ResNet through transformers Auto
classes),
a multi-camera wrapper with learned camera embeddings, and the proprioception MLP.

Text needs no encoder of its own: it goes through the backbone's tokenizer and input
embeddings (see :mod:`embodied_mm.model.backbone`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from embodied_mm.model.augment import random_shift
from embodied_mm.model.config_io import Checked, Rule, at_least, fraction, one_of, registered
from embodied_mm.model.film import FILM_TEXT, FiLM
from embodied_mm.model.keypoints import KeypointReadout
from embodied_mm.registry import Registry


@dataclass(frozen=True)
class VisionFamily:
    """How to build one family of vision towers."""

    model_type: str  # transformers config type of the vision-only model
    composite_type: str  # model_type of the full (image+text) checkpoint on the hub
    vision_class: str  # transformers class that loads the vision half of a composite checkpoint
    mean: tuple[float, float, float]  # pixel normalisation the family was trained with
    std: tuple[float, float, float]
    has_cls: bool  # whether last_hidden_state starts with a CLS token
    # "vit": patch tokens (B, N, D); "conv": a feature map (B, D, h, w) read as h*w tokens.
    # Small conv towers localise objects from few demos far better than a ViT trained from
    # scratch, so the tiny recipes use one.
    kind: str = "vit"


VISION_FAMILIES: Registry[VisionFamily] = Registry("vision tower family")
VISION_FAMILIES.register(
    "siglip",
    VisionFamily(
        "siglip_vision_model", "siglip", "SiglipVisionModel", (0.5,) * 3, (0.5,) * 3, False
    ),
)
VISION_FAMILIES.register(
    "clip",
    VisionFamily(
        "clip_vision_model",
        "clip",
        "CLIPVisionModel",
        (0.48145466, 0.4578275, 0.40821073),
        (0.26862954, 0.26130258, 0.27577711),
        True,
    ),
)
VISION_FAMILIES.register(
    "dinov2",
    VisionFamily(
        "dinov2", "dinov2", "Dinov2Model", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), True
    ),
)
VISION_FAMILIES.register(
    "resnet",
    VisionFamily(
        "resnet", "resnet", "ResNetModel", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), False,
        kind="conv",
    ),
)  # fmt: skip


_TOWER_SIZES = ("image_size", "patch_size", "hidden_size", "num_layers", "num_heads",
                "intermediate_size")  # fmt: skip


@dataclass
class VisionConfig(Checked):
    """A vision tower: pretrained (hub name / local dir) or fresh from the size fields."""

    family: str = "siglip"  # a VISION_FAMILIES name
    pretrained: str | None = None  # hub name or local directory; None builds a fresh tower
    image_size: int = 64  # the tower's input size; camera images are resized to it
    patch_size: int = 16  # ViT patch; for conv towers the total stride (set when built)
    hidden_size: int = 64  # ViT width; for conv towers the last stage's channels
    num_layers: int = 2  # ViT blocks; for conv towers the stages (channels double per stage)
    num_heads: int = 2
    intermediate_size: int = 128
    freeze: bool = False  # keep the tower's weights fixed (typical with pretrained towers)
    # Conv towers only: condition every stage on the instruction (FiLM, as RT-1 does).
    film: bool = False
    # What FiLM reads of the instruction (model/film.py: InstructionSummary): "mean" of its
    # token embeddings (order-free), or "attention" (a self-attention layer first: word order
    # counts, e.g. which cube goes on which).
    film_text: str = "mean"
    # Conv towers only: 0 reads the last feature map out as h*w tokens; K > 0 as K
    # spatial-softmax keypoint tokens (position made explicit, see model/keypoints.py).
    keypoints: int = 0
    # Training only: random translation by up to this many pixels at the tower's input size.
    shift_augment: int = 0
    # The tower's full transformers config, filled when built, so a saved policy rebuilds offline.
    hf_config: dict[str, Any] | None = None

    RULES: ClassVar[dict[str, Rule]] = {
        "family": registered(lambda: VISION_FAMILIES.names()),
        **dict.fromkeys(_TOWER_SIZES, at_least(1)),
        "keypoints": at_least(0),
        "shift_augment": at_least(0),
        "film_text": one_of(*FILM_TEXT),
    }


def build_vision_model(cfg: VisionConfig) -> nn.Module:
    """Build the transformers vision model and fill ``cfg.hf_config`` / ``cfg.image_size``."""
    import transformers
    from transformers import AutoConfig, AutoModel

    family = VISION_FAMILIES.get(cfg.family)
    if cfg.hf_config is not None:  # rebuilding a saved policy: weights come from its safetensors
        hf_cfg = AutoConfig.for_model(**cfg.hf_config)
        model = AutoModel.from_config(hf_cfg)
    elif cfg.pretrained is not None:
        hf_cfg = AutoConfig.from_pretrained(cfg.pretrained)
        if hf_cfg.model_type == family.model_type:
            model = AutoModel.from_pretrained(cfg.pretrained)
        elif hf_cfg.model_type == family.composite_type:
            # A full CLIP/SigLIP checkpoint: load only its vision half.
            model = getattr(transformers, family.vision_class).from_pretrained(cfg.pretrained)
        else:
            raise ValueError(
                f"{cfg.pretrained} is a {hf_cfg.model_type!r} model; the {cfg.family!r} tower "
                f"expects {family.model_type!r} or {family.composite_type!r}"
            )
    elif family.kind == "conv":
        # channels double per stage up to hidden_size; one basic block per stage
        sizes = [cfg.hidden_size // 2 ** (cfg.num_layers - 1 - i) for i in range(cfg.num_layers)]
        hf_cfg = AutoConfig.for_model(
            family.model_type, num_channels=3, embedding_size=sizes[0], hidden_sizes=sizes,
            depths=[1] * cfg.num_layers, layer_type="basic",
        )  # fmt: skip
        model = AutoModel.from_config(hf_cfg)
    else:
        hf_cfg = AutoConfig.for_model(
            family.model_type,
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size,
        )
        model = AutoModel.from_config(hf_cfg)
    hf_dict = model.config.to_dict()
    cfg.hf_config = {k: v for k, v in hf_dict.items() if not k.startswith("_")}
    if family.kind == "conv":
        # stem /4, then /2 per stage after the first (unless the first downsamples too)
        stages = len(model.config.hidden_sizes)
        first = 2 if getattr(model.config, "downsample_in_first_stage", False) else 1
        cfg.patch_size = 4 * first * 2 ** (stages - 1)
        cfg.hidden_size = int(model.config.hidden_sizes[-1])
        return model
    cfg.image_size = int(model.config.image_size)
    cfg.patch_size = int(model.config.patch_size)
    cfg.hidden_size = int(model.config.hidden_size)
    return model


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """Camera frames in either accepted layout → float (B, 3, H, W) in [0, 1].

    Accepts uint8 (B, H, W, 3) or float (B, 3, H, W) in [0, 1], each optionally with an
    observation-history dim (B, T, ...) of which the last step is used.
    """
    if images.dtype == torch.uint8:
        if images.ndim == 5:
            images = images[:, -1]  # (B, H, W, 3)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"uint8 images must be (B, H, W, 3) or (B, T, H, W, 3); got {tuple(images.shape)}"
            )
        return images.permute(0, 3, 1, 2).float().div_(255.0)
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 or float; got {images.dtype}")
    if images.ndim == 5:
        images = images[:, -1]  # (B, 3, H, W)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"float images must be (B, 3, H, W) or (B, T, 3, H, W); got {tuple(images.shape)}"
        )
    return images.float()


class VisionTower(nn.Module):
    """One transformers vision model: normalised pixels (B, 3, S, S) → patch features (B, N, Dv).

    With ``cfg.film`` the tower also takes the instruction embedding (B, ``cond_dim``).
    """

    def __init__(self, cfg: VisionConfig, cond_dim: int | None = None) -> None:
        super().__init__()
        self.model = build_vision_model(cfg)
        family = VISION_FAMILIES.get(cfg.family)
        self.film: FiLM | None = None
        if cfg.film:
            if family.kind != "conv":
                raise ValueError(
                    f"film conditions conv towers between stages; {cfg.family!r} is a "
                    f"{family.kind} tower (use family 'resnet')"
                )
            if cond_dim is None:
                raise ValueError("a film tower needs cond_dim, the instruction embedding size")
            self.film = FiLM(cond_dim, [int(c) for c in self.model.config.hidden_sizes])
        self.keypoints: KeypointReadout | None = None
        if cfg.keypoints:
            if family.kind != "conv":
                raise ValueError(
                    f"keypoints read out a conv feature map; {cfg.family!r} is a {family.kind} "
                    "tower (use family 'resnet')"
                )
            self.keypoints = KeypointReadout(cfg.hidden_size, cfg.keypoints, cfg.hidden_size)
        if cfg.shift_augment < 0:
            raise ValueError(f"shift_augment must be >= 0 pixels, got {cfg.shift_augment}")
        self.shift_augment = cfg.shift_augment
        self.image_size = cfg.image_size
        self.hidden_size = cfg.hidden_size
        self.conv = family.kind == "conv"
        grid = cfg.image_size // cfg.patch_size
        self.num_tokens = cfg.keypoints or grid * grid + (1 if family.has_cls else 0)
        if cfg.freeze:
            self.model.requires_grad_(False)

    def forward(self, pixels: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``pixels`` (B, 3, S, S) at the tower's input size, normalised with its family's mean
        and std (the ``camera_pixels`` processor step); ``cond`` (B, E), required by film
        towers. The random shift pads by replicating edges, so it commutes with that
        per-channel normalisation."""
        if self.training and self.shift_augment:
            pixels = random_shift(pixels, self.shift_augment)
        if self.film is not None:
            if cond is None:
                raise ValueError("this tower is conditioned on the instruction (film): pass cond")
            x = self.model.embedder(pixels)  # (B, C_0, H/4, W/4)
            for stage, (gamma, beta) in zip(
                self.model.encoder.stages, self.film(cond), strict=True
            ):
                x = torch.addcmul(beta, stage(x), gamma)  # (B, C_i, h_i, w_i)
            out = x
        else:
            out = self.model(pixel_values=pixels).last_hidden_state
        if self.keypoints is not None:
            return self.keypoints(out)  # (B, K, Dv)
        if self.conv:  # (B, Dv, h, w) feature map → (B, h*w, Dv) tokens, row-major
            return out.flatten(2).transpose(1, 2)
        return out  # (B, N, Dv)


class MultiCameraVision(nn.Module):
    """Encodes several cameras with shared or per-camera towers plus a learned camera embedding.

    The camera embedding is added to every patch feature of that camera, so a shared tower's
    tokens still say which camera they came from.
    """

    def __init__(
        self,
        cfg: VisionConfig,
        cameras: list[str],
        shared: bool = True,
        cond_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not cameras:
            raise ValueError("a policy needs at least one camera")
        self.cameras = list(cameras)
        self.shared = shared
        if shared:
            self.towers = nn.ModuleList([VisionTower(cfg, cond_dim)])
        else:
            self.towers = nn.ModuleList([VisionTower(cfg, cond_dim) for _ in cameras])
        tower = self.towers[0]
        self.hidden_size = tower.hidden_size
        self.tokens_per_camera = tower.num_tokens
        self.camera_embed = nn.Parameter(torch.randn(len(cameras), 1, tower.hidden_size) * 0.02)

    def forward(self, images: list[torch.Tensor], cond: torch.Tensor | None = None) -> torch.Tensor:
        """``images[c]``: normalised pixels (B, 3, S, S) of camera c (see
        :meth:`VisionTower.forward`); ``cond`` (B, E) the instruction embedding for film
        towers → (B, C, N, Dv)."""
        if self.shared:
            # One tower call for all cameras: (C*B, 3, S, S) is faster than C calls.
            tower = self.towers[0]
            pixels = torch.cat(images, dim=0)
            conds = None if cond is None else cond.repeat(len(images), 1)  # (C*B, E)
            feats = tower(pixels, conds)  # (C*B, N, Dv)
            feats = feats.view(len(images), images[0].shape[0], *feats.shape[1:]).transpose(0, 1)
        else:
            feats = torch.stack(
                [t(x, cond) for t, x in zip(self.towers, images, strict=True)], dim=1
            )
        return feats + self.camera_embed  # (B, C, N, Dv)


@dataclass
class ProprioConfig(Checked):
    """The proprioception MLP: state (B, S) → ``num_tokens`` backbone tokens."""

    hidden_size: int = 128
    num_tokens: int = 1
    # Training only: the probability that a sample's state tokens are zeroed. Demos' state
    # predicts the next action so well that a policy can learn to ignore the cameras (and then
    # fails at the first step, where every episode's state is the same home pose).
    dropout: float = 0.0

    RULES: ClassVar[dict[str, Rule]] = {
        "hidden_size": at_least(1),
        "num_tokens": at_least(1),
        "dropout": fraction(),
    }


class ProprioEncoder(nn.Module):
    def __init__(self, cfg: ProprioConfig, state_dim: int, out_dim: int) -> None:
        super().__init__()
        if not 0.0 <= cfg.dropout < 1.0:
            raise ValueError(f"proprio dropout must be in [0, 1), got {cfg.dropout}")
        self.num_tokens = cfg.num_tokens
        self.out_dim = out_dim
        self.dropout = cfg.dropout
        self.mlp = nn.Sequential(
            nn.Linear(state_dim, cfg.hidden_size),
            nn.GELU(),
            nn.Linear(cfg.hidden_size, out_dim * cfg.num_tokens),
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        tokens = self.mlp(state).view(state.shape[0], self.num_tokens, self.out_dim)  # (B, T_s, H)
        if self.training and self.dropout > 0:
            keep = torch.rand(state.shape[0], 1, 1, device=state.device) >= self.dropout
            tokens = tokens * keep
        return tokens
