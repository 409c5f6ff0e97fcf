"""``show``: annotated episode video and contact sheet."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from embodied_mm.data.show import render_episode, show_episode
from embodied_mm.data.video import count_frames


def test_show_mp4_has_one_annotated_frame_per_row(small_dataset, tmp_path):
    root, episodes = small_dataset
    frames, fps = render_episode(root, 1)
    assert fps == 10 and len(frames) == len(episodes[1])
    h, w, _ = frames[0].shape
    assert w == 2 * 48 * 3 and h > 32 * 3  # two cameras side by side, plus the text panel
    panel = frames[0][32 * 3 :]
    assert (panel > 200).any()  # text was drawn on the dark panel
    out = show_episode(root, 1, tmp_path / "ep1.mp4")
    assert count_frames(out) == len(episodes[1])


def test_show_contact_sheet_png(small_dataset, tmp_path):
    root, _ = small_dataset
    out = show_episode(root, 2, tmp_path / "sheet.png", sheet_frames=6)
    img = cv2.imread(str(out))
    frames, _ = render_episode(root, 2)
    fh, fw, _ = frames[0].shape
    assert img.shape == (2 * fh, 4 * fw, 3)  # 6 tiles -> 2 rows of 4, the last two blank
    assert np.all(img[fh:, 2 * fw :] == 0)


def test_show_rejects_unknown_episode_and_format(small_dataset, tmp_path):
    root, _ = small_dataset
    with pytest.raises(ValueError, match="episode 9 is not in"):
        show_episode(root, 9, tmp_path / "x.mp4")
    with pytest.raises(ValueError, match=r"\.mp4 or \.png"):
        show_episode(root, 0, tmp_path / "x.gif")
