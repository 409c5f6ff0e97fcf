"""Videos made for people: a presentation camera and a text banner drawn on its frames.

The cameras a policy sees are small (128²) and frame the workspace, so the arm is partly out
of view. :data:`PRESENTATION_CAMERA` looks at the whole robot and table from the front-left
at 480×360; the env adds it to its scene but never to its observation (``Engine.render`` of
its name, :meth:`~embodied_mm.envs.tabletop_env.TabletopEnv.render_presentation`), so it
costs nothing unless a video is being written. :func:`draw_banner` writes the instruction and
the policy's current plan across the top of a frame (Pillow's built-in FreeType font: no font
files to ship).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from embodied_mm.envs.engine import CameraSpec

PRESENTATION_CAMERA = CameraSpec(
    "presentation", pos=(1.55, -1.05, 1.05), target=(0.3, 0.0, 0.3), fovy_deg=50.0
)
PRESENTATION_SIZE = (360, 480)  # (H, W)
# ``--video-camera``: the presentation camera (default) or the policy's own views.
VIDEO_CAMERAS = ("presentation", "policy")
BANNER_FG = (255, 255, 255)
BANNER_BG = (20, 24, 32)
_FONT_PX = 15
_LINE_PX = 19


@lru_cache(maxsize=4)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def banner_height(lines: int) -> int:
    """Pixels of the banner that holds ``lines`` lines of text."""
    return 6 + _LINE_PX * lines


def _fit(text: str, width: int, font) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` pixels in ``font``."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def draw_banner(
    frame: np.ndarray,  # (H, W, 3) uint8
    instruction: str,
    plan: str | None = None,
) -> np.ndarray:  # (H, W, 3) uint8, a new array
    """``frame`` with the instruction (and, when there is one, the plan) on a dark strip
    across its top; lines too long for the frame end in an ellipsis."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(frame))
    font = _font(_FONT_PX)
    lines = [f"task: {instruction}"] + ([f"plan: {plan}"] if plan else [])
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, img.width, banner_height(len(lines))), fill=BANNER_BG)
    for i, line in enumerate(lines):
        draw.text((6, 4 + _LINE_PX * i), _fit(line, img.width - 12, font), fill=BANNER_FG,
                  font=font)  # fmt: skip
    return np.asarray(img)
