"""What a :class:`~embodied_mm.model.modeling_vla.VLAPolicy` is made of: its typed config.

Every field is saved in the checkpoint's ``config.json`` (:mod:`embodied_mm.model.pretrained`)
and is what a recipe presets and a user overrides field by field (``--policy.chunk_size 16``,
:mod:`embodied_mm.policies.recipes`). Types and the ``RULES`` of this class and of each
component config are checked on construction and on loading
(:mod:`embodied_mm.model.config_io`), so a bad value fails naming its field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from embodied_mm.features import ACTION, OBS_STATE, WAYPOINT_KEYS
from embodied_mm.model.backbone import BackboneConfig
from embodied_mm.model.config_io import Checked, Rule, at_least, each, fraction, non_empty, one_of
from embodied_mm.model.encoders import ProprioConfig, VisionConfig
from embodied_mm.model.heads import HeadConfig
from embodied_mm.model.normalize import NORM_MODES, STD_FLOOR_REL
from embodied_mm.model.projectors import ProjectorConfig
from embodied_mm.model.vlm import VLMConfig

_SIZES = ("image_size", "state_dim", "action_dim", "chunk_size", "max_text_tokens",
          "max_plan_tokens")  # fmt: skip


@dataclass
class PolicyConfig(Checked):
    """One policy: its cameras, state and action sizes, chunk length, the config of each
    component (vision tower, projector, proprio encoder, backbone, head) and the training-time
    options that change what the weights compute (normalisation, goal loss)."""

    head: HeadConfig = field(default_factory=HeadConfig)
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    image_size: int = 128  # camera frames as the env renders them; towers resize to their own size
    state_dim: int = 15
    action_dim: int = 7
    chunk_size: int = 8  # K: actions per predicted chunk
    vision: VisionConfig = field(default_factory=VisionConfig)
    shared_tower: bool = True  # one tower for all cameras (cheaper) or one per camera
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    proprio: ProprioConfig = field(default_factory=ProprioConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    # A pretrained vision-language model as encoder, projector and LLM at once (model/vlm.py);
    # when set, vision, shared_tower, projector and backbone are not used.
    vlm: VLMConfig | None = None
    # Tokenizer directory or hub name; None = the backbone's own when pretrained, else the
    # shipped offline one.
    tokenizer: str | None = None
    max_text_tokens: int = 32  # longer instructions are cut
    max_plan_tokens: int = 32
    # Training only: each instruction token is swapped for a random one with this probability
    # (model/augment.py: random_token_swap), so that unseen words of new phrasings do not
    # throw the policy. Conv towers with the shipped text path only (not a VLM's prompt).
    text_token_noise: float = 0.0
    plan_loss_weight: float = 1.0
    # Training only: > 0 adds a hindsight-goal loss (weight × MSE) that predicts the state at
    # the end of the sample's episode from the image tokens alone. The action loss alone
    # let small policies memorise the training scenes instead of locating the object the
    # instruction names; the end state (where the gripper went) is that location.
    goal_loss_weight: float = 0.0
    # The state dims the goal head predicts; None = the "goal" group of the training data's
    # robot layout (embodied_mm/processor/robots: our sim's gripper x, y), else every dim.
    goal_dims: list[int] | None = None
    # Which states the goal head predicts, in order: "final" (the episode's end), "first_phase"
    # (the end of its first plan phase: above the object, for a pick) and/or "phase_end" (the
    # end of the plan phase the frame is in). Tasks with several places that matter (the
    # object, then the bin) need more than one.
    goal_waypoints: list[str] = field(default_factory=lambda: ["final"])
    # True: the goal head's waypoints (normalised, detached: the action loss does not train
    # them) enter the prefix as one more token after the state's, so the action path reads
    # where to go instead of working it out again. Needs goal_loss_weight > 0.
    goal_input: bool = False
    norm_modes: dict[str, str] = field(
        default_factory=lambda: {OBS_STATE: "mean_std", ACTION: "q01_q99"}
    )
    # mean_std features divide by at least this fraction of their widest dimension's range
    # (model/normalize.py); saved, because the weights are trained for it.
    std_floor_rel: float = STD_FLOOR_REL

    RULES: ClassVar[dict[str, Rule]] = {
        "cameras": non_empty(),
        **dict.fromkeys(_SIZES, at_least(1)),
        **dict.fromkeys(("plan_loss_weight", "goal_loss_weight", "std_floor_rel"), at_least(0)),
        "text_token_noise": fraction(),
        "goal_dims": each(at_least(0)),
        "goal_waypoints": Rule(
            f"at least one of {', '.join(WAYPOINT_KEYS)}",
            lambda v: len(v) > 0,
            item=one_of(*WAYPOINT_KEYS),
        ),
        "norm_modes": each(one_of(*NORM_MODES)),
    }
