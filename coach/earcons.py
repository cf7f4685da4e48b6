"""Earcons: short, gentle tones generated in code (no binary assets)."""

from __future__ import annotations

from coach.timeline import Earcon

EARCON_MS: dict[Earcon, int] = {
    Earcon.HOLD_START: 250,
    Earcon.HOLD_END: 300,
    Earcon.REP_TICK: 80,
    Earcon.SIDE_SWITCH: 450,
    Earcon.EXERCISE_START: 600,
    Earcon.SESSION_END: 1200,
}
"""Length of each earcon in ms; the timeline uses these as TONE cue durations."""
