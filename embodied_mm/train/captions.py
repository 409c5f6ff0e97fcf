"""Frame → caption pairs for alignment pre-training, made by the simulator for free.

The survey's MM pre-training stage teaches the input projectors to put images where the
LLM can read them. In simulation every frame comes with ground truth, so captions are exact:
object colours and kinds, and their spatial relations as the front camera sees them
("the red cube is left of the blue can").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from embodied_mm.features import OBS_STATE, PLAN, TASK, image_key

CAPTION_PROMPT = "describe the scene"
KIND_WORDS = {"box": "cube", "cylinder": "can", "sphere": "ball"}


def _color_word(rgba: Sequence[float]) -> str:
    from embodied_mm.envs.tasks.layout import PALETTE

    rgb = np.asarray(rgba[:3])
    return min(PALETTE, key=lambda name: float(np.sum((np.asarray(PALETTE[name]) - rgb) ** 2)))


def scene_objects(env: Any) -> list[tuple[str, np.ndarray]]:
    """(``"red cube"``, xyz) for each movable object of the env's current episode."""
    specs = {o.name: o for o in env.unwrapped.task.objects()}
    episode = env.unwrapped.episode
    out = []
    for name, (pos, _quat) in sorted(episode.poses.items()):
        spec = specs.get(name)
        if spec is None or spec.mass <= 0 or name not in episode.rgba:
            continue  # fixtures (bin walls, zones, plates) are not described
        words = f"{_color_word(episode.rgba[name])} {KIND_WORDS.get(spec.shape, 'object')}"
        out.append((words, np.asarray(pos, dtype=np.float64)))
    return out


def caption(objects: list[tuple[str, np.ndarray]], rng: np.random.Generator) -> str:
    """One true sentence about the scene. The front camera looks along -x, so the image's
    left is -y and "in front of" (nearer the camera) is +x."""
    if not objects:
        return "the table is empty"
    if len(objects) == 1:
        return f"there is a {objects[0][0]} on the table"
    i, j = rng.choice(len(objects), size=2, replace=False)
    (a, pa), (b, pb) = objects[i], objects[j]
    dx, dy = pa[0] - pb[0], pa[1] - pb[1]
    if abs(dy) >= abs(dx):
        relation = "left of" if dy < 0 else "right of"
    else:
        relation = "in front of" if dx > 0 else "behind"
    return f"the {a} is {relation} the {b}"


class CaptionDataset(Dataset):
    """``n`` rendered frames with captions, drawn from random resets of the given envs.

    Items follow the policy batch contract: camera images (3, H, W) float in [0, 1],
    ``observation.state``, ``task`` = the caption prompt, ``plan`` = the caption.
    """

    def __init__(self, env_ids: Sequence[str], n: int, seed: int = 0, engine: str = "mujoco",
                 image_size: int = 128) -> None:  # fmt: skip
        import gymnasium as gym

        import embodied_mm.envs  # noqa: F401  (registers the ids)

        if not env_ids:
            raise ValueError("alignment needs at least one env id to caption")
        rng = np.random.default_rng(seed)
        self.items: list[dict[str, Any]] = []
        per_env = -(-n // len(env_ids))
        for k, env_id in enumerate(env_ids):
            env = gym.make(env_id, engine=engine, image_size=image_size)
            try:
                for i in range(min(per_env, n - len(self.items))):
                    obs, _ = env.reset(seed=seed * 1_000_003 + k * 100_003 + i)
                    self.items.append(self._item(obs, caption(scene_objects(env), rng)))
            finally:
                env.close()

    @staticmethod
    def _item(obs: dict[str, Any], text: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            image_key(cam): torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
            for cam, img in obs["pixels"].items()
        }  # (3, H, W) uint8; converted to float per batch to keep memory low
        item[OBS_STATE] = torch.from_numpy(np.asarray(obs["agent_pos"], dtype=np.float32))
        item[TASK] = CAPTION_PROMPT
        item[PLAN] = text
        return item

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.items[i])
        for key, value in item.items():
            if torch.is_tensor(value) and value.dtype == torch.uint8:
                item[key] = value.float() / 255.0  # (3, H, W) in [0, 1]
        return item
