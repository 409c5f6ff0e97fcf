"""Locating and validating the files under ``sim_assets/``."""

from __future__ import annotations

from pathlib import Path

import embodied_mm.sim_assets as _sim_assets

ASSETS_DIR = Path(_sim_assets.__file__).resolve().parent


class AssetError(ValueError):
    """An asset file is missing or malformed; the message names the file."""


def asset_path(relative: str) -> Path:
    """Absolute path of ``sim_assets/<relative>``; fails naming the file if it is missing."""
    path = ASSETS_DIR / relative
    if not path.is_file():
        raise AssetError(f"asset file not found: {path}")
    return path
