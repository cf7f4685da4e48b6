"""Shared helpers for routine tests: a valid routine text and problem listings."""

from __future__ import annotations

from pathlib import Path

import pytest

from coach.loader import RoutineError, parse_routine

DATA_DIR = Path(__file__).resolve().parent / "data" / "routines"
VALID_PATH = DATA_DIR / "valid.yaml"
TYPOS_PATH = DATA_DIR / "typos.yaml"


def valid_text() -> str:
    """A small valid routine; see tests/data/routines/valid.yaml for its line numbers."""
    return VALID_PATH.read_text(encoding="utf-8")


def edited(old: str, new: str, text: str | None = None) -> str:
    """The valid routine with exactly one occurrence of ``old`` replaced by ``new``."""
    text = valid_text() if text is None else text
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


def problems(data: str | bytes) -> list[str]:
    """``LINE:COL: path: message`` of every problem in ``data`` (which must be invalid)."""
    with pytest.raises(RoutineError) as caught:
        parse_routine(data, "r.yaml")
    lines = [str(problem).removeprefix("r.yaml:") for problem in caught.value.problems]
    assert str(caught.value) == "\n".join(f"r.yaml:{line}" for line in lines)
    return lines


def only_problem(data: str | bytes) -> str:
    """The single problem in ``data``."""
    found = problems(data)
    assert len(found) == 1, found
    return found[0]
