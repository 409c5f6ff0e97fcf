"""``embodied-mm dataset show``: look at an episode, with its text and state drawn on it.

Writes an mp4 (every frame) or, for a ``.png`` output, a contact sheet of evenly spaced
frames. Each tile shows the cameras side by side, scaled up so the text is legible, and a
panel with the instruction, the current plan, the frame index and the state vector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from embodied_mm.data.reader import DatasetMeta, load_frames
from embodied_mm.data.video import DecoderPool, encode_video
from embodied_mm.errors import UsageError
from embodied_mm.features import ACTION, INTERVENTION, OBS_STATE, PLAN

SCALE = 3  # 128² cameras become 384² tiles
FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_COLOR = (255, 255, 255)
PANEL_COLOR = (32, 32, 32)


def _read_episode(root: Path, episode: int):
    """One episode's rows: (meta, its EpisodeInfo, columns, video key -> frames (T, H, W, 3),
    instruction, timestamps)."""
    meta = DatasetMeta(Path(root))
    ids = [e.episode_index for e in meta.episodes]
    if episode not in ids:
        raise UsageError(f"episode {episode} is not in {root} (it has {len(ids)}: {ids[:10]}...)")
    pos = ids.index(episode)
    ep = meta.episodes[pos]
    meta.episodes = [ep]  # read only this episode's rows
    cols = load_frames(meta).columns
    pool = DecoderPool()
    times = [float(t) for t in cols["timestamp"]]
    cams = {
        k: pool.get(path).frames_at([from_ts + t for t in times])  # (T, H, W, 3)
        for k, (path, from_ts) in ((k, ep.videos[k]) for k in meta.video_keys)
    }
    pool.close()
    task = meta.tasks[int(cols["task_index"][0])]
    return meta, ep, cols, cams, task, times


def render_episode(root: Path, episode: int) -> tuple[list[np.ndarray], int]:
    """Annotated RGB frames (each (H', W', 3) uint8) of one episode, and the fps."""
    meta, ep, cols, cam_frames, task, times = _read_episode(root, episode)
    cams = list(cam_frames.values())
    out = []
    for t in range(ep.length):
        tiles = [
            cv2.resize(c[t], None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
            for c in cams
        ]
        top = np.concatenate(tiles, axis=1) if tiles else np.zeros((240, 480, 3), np.uint8)
        lines = [
            f"ep {episode}  frame {t}/{ep.length - 1}  t={times[t]:.2f}s",
            f"task: {task}",
        ]
        if PLAN in cols:
            lines.append(f"plan: {cols[PLAN][t]}")
        state = np.asarray(cols[OBS_STATE][t]).reshape(-1)
        for i in range(0, len(state), 8):
            lines.append(
                ("state: " if i == 0 else "       ")
                + " ".join(f"{v:+.2f}" for v in state[i : i + 8])
            )
        out.append(_with_panel(top, lines))
    return out, meta.fps


def log_episode(root: Path, episode: int, viz: Any) -> int:
    """Send one episode to a :class:`~embodied_mm.viz.rerun_log.RerunLog` (cameras, state,
    the recorded action as the one sent, plan, instruction; a ``deploy --record`` dataset's
    ``intervention`` flag, 1 where a person drove, as ``intervention``); returns its length."""
    _, ep, cols, cams, task, times = _read_episode(root, episode)
    viz.new_episode(episode)
    for t in range(ep.length):
        frame: dict[str, Any] = {k: frames[t] for k, frames in cams.items()}
        if OBS_STATE in cols:
            frame[OBS_STATE] = np.asarray(cols[OBS_STATE][t]).reshape(-1)
        sent = np.asarray(cols[ACTION][t]).reshape(-1) if ACTION in cols else None
        plan = str(cols[PLAN][t]) if PLAN in cols else None
        viz.log_step(t, times[t] - times[0], frame, None, sent, plan=plan, task=task)
        if INTERVENTION in cols:
            viz.log_scalar("intervention", float(np.asarray(cols[INTERVENTION][t]).reshape(-1)[0]))
    return ep.length


def _with_panel(image: np.ndarray, lines: list[str]) -> np.ndarray:
    line_h = 22
    panel = np.full((line_h * len(lines) + 10, image.shape[1], 3), PANEL_COLOR, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(panel, text, (8, line_h * (i + 1)), FONT, 0.5, TEXT_COLOR, 1, cv2.LINE_AA)
    frame = np.concatenate([image, panel], axis=0)
    # yuv420p video needs even sizes
    return frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]


def show_episode(root: Path, episode: int, out: Path, sheet_frames: int = 12) -> Path:
    """Write ``out``: an annotated ``.mp4`` of the episode, or a ``.png`` contact sheet."""
    out = Path(out)
    frames, fps = render_episode(root, episode)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".mp4":
        encode_video(np.stack(frames), out, fps)
    elif out.suffix == ".png":
        picks = np.unique(
            np.linspace(0, len(frames) - 1, min(sheet_frames, len(frames))).astype(int)
        )
        cols = min(4, len(picks))
        tiles = [frames[i] for i in picks]
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
        rows = [np.concatenate(tiles[r : r + cols], axis=1) for r in range(0, len(tiles), cols)]
        if not cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR)):
            raise OSError(f"{out}: could not write the PNG")
    else:
        raise UsageError(f"{out}: the output must end in .mp4 or .png")
    return out
