"""Routines built in Python for timeline tests (independent of the built-in YAML files)."""

from __future__ import annotations

from typing import Any

from coach.routine import Routine
from coach.timeline import Cue, CueKind, Mark, Phase, Timeline

LONG_DISCLAIMER = (
    "This coach is not a medical device and does not diagnose or treat anything. "
    "Check with your doctor or physiotherapist before starting, and follow their advice "
    "over anything said here."
)
LONG_RED_FLAGS = (
    "Seek urgent medical care if you have numbness around your groin or buttocks, "
    "new trouble controlling your bladder or bowels, weakness in your legs that is getting "
    "worse, or severe pain at night that does not ease."
)


def one_second(text: str) -> int:
    """A speech timer where every sentence takes exactly one second."""
    return 1000


def exercise_data(**overrides: Any) -> dict[str, Any]:
    """A valid exercise as plain data; keyword arguments replace fields."""
    data: dict[str, Any] = {
        "id": "supine",
        "name": "the lying glide",
        "source": "src",
        "position": "lying_on_back",
        "sides": "left",
        "reps_per_side": 2,
        "sets": 1,
        "hold_s": 3.0,
        "tempo_s": 2.0,
        "rest_between_sets_s": 10.0,
        "rest_between_sides_s": 5.0,
        "setup": ["Lie on your back with both knees bent."],
        "rep": [
            {"say": "Straighten the knee, toes toward you.", "hold": True},
            {"say": "Bend and relax."},
        ],
        "feel": "A gentle stretch behind the thigh, nothing sharp.",
        "stop_if": "Stop if you feel sharp pain or tingling.",
        "progression": {
            "start_reps": 2,
            "target_reps": 10,
            "over_weeks": 6,
            "note": "Add a rep or two each week.",
        },
    }
    data.update(overrides)
    return data


def make_routine(*exercises: dict[str, Any], **overrides: Any) -> Routine:
    """A valid routine with ``exercises`` (default: one ``exercise_data()``)."""
    data: dict[str, Any] = {
        "id": "test-routine",
        "title": "a test routine",
        "description": "A short routine for tests.",
        "sources": [{"id": "src", "title": "A source text", "site": "example.org"}],
        "safety": {
            "disclaimer": LONG_DISCLAIMER,
            "red_flags": LONG_RED_FLAGS,
            "stop_rule": "Stop at sharp pain.",
            "limits": {"max_reps_per_leg_per_day": 60, "max_sessions_per_day": 3},
        },
        "exercises": list(exercises) or [exercise_data()],
    }
    data.update(overrides)
    return Routine.model_validate(data)


def marks(timeline: Timeline, phase: Phase | None = None) -> list[Mark]:
    """The marks of ``timeline`` in order (only ``phase`` if given)."""
    found = [cue.mark for cue in timeline.cues if cue.kind is CueKind.MARK and cue.mark]
    return [mark for mark in found if phase is None or mark.phase is phase]


def mark_cues(timeline: Timeline, phase: Phase) -> list[Cue]:
    """The MARK cues of ``timeline`` for ``phase``, in order."""
    return [
        cue
        for cue in timeline.cues
        if cue.kind is CueKind.MARK and cue.mark is not None and cue.mark.phase is phase
    ]


def said(timeline: Timeline) -> list[str]:
    """Every sentence spoken, in order."""
    return [cue.text for cue in timeline.cues if cue.kind is CueKind.SAY and cue.text]


def timed(timeline: Timeline) -> list[Cue]:
    """The cues that take time (SAY, PAUSE, TONE)."""
    return [cue for cue in timeline.cues if cue.kind in (CueKind.SAY, CueKind.PAUSE, CueKind.TONE)]
