"""Shared test set-up: every test gets private cache, data and config directories."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path_factory.mktemp("coach-home")
    for name in ("CACHE", "DATA", "CONFIG"):
        path = Path(root) / name.lower()
        path.mkdir()
        monkeypatch.setenv(f"COACH_{name}_DIR", str(path))
