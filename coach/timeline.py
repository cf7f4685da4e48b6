"""The timeline: the one place where time is decided (integer milliseconds).

A pure function of the routine and the options, so the rendered track and the
live session say the same words at the same offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from coach.routine import Routine


class CueKind(StrEnum):
    """What a cue does."""

    SAY = "say"
    PAUSE = "pause"
    TONE = "tone"
    CHAPTER = "chapter"
    MARK = "mark"


class Earcon(StrEnum):
    """Short tones generated in code; each has a distinct sound."""

    HOLD_START = "hold_start"
    HOLD_END = "hold_end"
    REP_TICK = "rep_tick"
    SIDE_SWITCH = "side_switch"
    EXERCISE_START = "exercise_start"
    SESSION_END = "session_end"


class Role(StrEnum):
    """Why a sentence is said; the session uses it (REPEAT, shortened intro)."""

    INTRO = "intro"
    DISCLAIMER = "disclaimer"
    RED_FLAGS = "red_flags"
    COMMANDS = "commands"
    SETUP = "setup"
    MOVE = "move"
    COUNT = "count"
    ENCOURAGE = "encourage"
    SWITCH = "switch"
    REST = "rest"
    OUTRO = "outro"


class Leg(StrEnum):
    """The leg a cue concerns; AFFECTED when the session has not chosen yet."""

    LEFT = "left"
    RIGHT = "right"
    AFFECTED = "affected"


class Phase(StrEnum):
    """Which point of the session a MARK cue records."""

    SESSION_START = "session_start"
    EXERCISE_START = "exercise_start"
    SIDE_START = "side_start"
    SET_START = "set_start"
    REP_START = "rep_start"
    HOLD_START = "hold_start"
    HOLD_END = "hold_end"
    REP_END = "rep_end"
    SIDE_END = "side_end"
    EXERCISE_END = "exercise_end"
    SESSION_END = "session_end"


@dataclass(frozen=True, slots=True)
class Mark:
    """Where in the routine a MARK cue sits (used by the session and the journal)."""

    phase: Phase
    exercise_id: str | None = None
    exercise_index: int | None = None
    """0-based index into ``routine.exercises``."""
    leg: Leg | None = None
    set_number: int | None = None
    """1-based."""
    rep_number: int | None = None
    """1-based within the set."""


@dataclass(frozen=True, slots=True)
class Cue:
    """One step of the timeline.

    ``at_ms`` is the start offset from the beginning of the session and
    ``duration_ms`` how long the cue occupies; CHAPTER and MARK cues take 0 ms.
    """

    at_ms: int
    duration_ms: int
    kind: CueKind
    text: str | None = None
    """SAY: the sentence; CHAPTER: the chapter title."""
    role: Role | None = None
    """SAY: why it is said."""
    earcon: Earcon | None = None
    """TONE: which tone."""
    mark: Mark | None = None
    """MARK: where in the routine; also set on CHAPTER cues."""

    @property
    def end_ms(self) -> int:
        """Offset where the cue ends."""
        return self.at_ms + self.duration_ms


SpeechTimer = Callable[[str], int]
"""Length in ms of a sentence as spoken: estimated from words per minute, or measured."""


@dataclass(frozen=True, slots=True)
class TimelineOptions:
    """How to compile a routine into a timeline."""

    pace: float = 1.0
    """Speed multiplier for movement tempo, pauses and rests (0.5 to 1.5): 0.8 is 20% slower.
    Holds are a prescribed dose and do not change with pace."""
    side_first: Leg = Leg.LEFT
    """Which leg goes first in exercises that work both legs."""
    affected_leg: Leg = Leg.AFFECTED
    """The painful leg, if chosen; AFFECTED keeps it generic ('your painful leg')."""
    voice_id: str = "calm"
    """Voice profile id; its rate feeds the default speech-length estimate."""
    returning_user: bool = False
    """Shorten the disclaimer and red-flag intro for someone who has heard it before."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """An ordered list of cues with the total duration."""

    routine_id: str
    title: str
    options: TimelineOptions
    cues: tuple[Cue, ...] = field(default_factory=tuple)
    total_ms: int = 0


def compile_timeline(
    routine: Routine,
    options: TimelineOptions | None = None,
    speech_ms: SpeechTimer | None = None,
) -> Timeline:
    """Compile ``routine`` into a timeline.

    ``speech_ms`` gives the spoken length of each sentence; by default it is
    estimated from the voice profile's words per minute. Speech synthesis
    passes the measured length instead.
    """
    raise NotImplementedError  # implemented by the timeline work (issue 2)
