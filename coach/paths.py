"""Where coach keeps its files: user cache and data directories (overridable)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "coach"


def cache_dir() -> Path:
    """Phrase cache and other disposable files; ``COACH_CACHE_DIR`` overrides."""
    override = os.environ.get("COACH_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir(APP_NAME))


def data_dir() -> Path:
    """Journal, installed models and user config; ``COACH_DATA_DIR`` overrides."""
    override = os.environ.get("COACH_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    """User configuration (vocabulary overrides); ``COACH_CONFIG_DIR`` overrides."""
    override = os.environ.get("COACH_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))
