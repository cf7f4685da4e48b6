"""The timeline: the one place where time is decided (integer milliseconds).

A pure function of the routine and the options, so the rendered track and the
live session say the same words at the same offsets.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from coach import phrases
from coach.routine import Exercise, RepPhase, Routine, Sides

MIN_PACE = 0.5
"""Slowest pace multiplier (everything but holds takes twice as long)."""
MAX_PACE = 1.5
"""Fastest pace multiplier."""
MIN_RATE_WPM = 60
MAX_RATE_WPM = 400
MAX_SENTENCE_PAUSE_MS = 3000


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
    rate_wpm: int = 140
    """Speaking rate in words per minute for the default speech-length estimate."""
    sentence_pause_ms: int = 0
    """Silence the voice leaves after each sentence, added by the default estimate."""

    def __post_init__(self) -> None:
        if not MIN_PACE <= self.pace <= MAX_PACE:  # also rejects NaN
            raise ValueError(f"pace must be between {MIN_PACE} and {MAX_PACE}, got {self.pace}")
        if self.side_first is Leg.AFFECTED:
            raise ValueError("side_first must be left or right")
        if not 0 <= self.sentence_pause_ms <= MAX_SENTENCE_PAUSE_MS:
            raise ValueError(
                f"sentence_pause_ms must be between 0 and {MAX_SENTENCE_PAUSE_MS}, "
                f"got {self.sentence_pause_ms}"
            )
        if not MIN_RATE_WPM <= self.rate_wpm <= MAX_RATE_WPM:
            raise ValueError(
                f"rate_wpm must be between {MIN_RATE_WPM} and {MAX_RATE_WPM}, got {self.rate_wpm}"
            )


@dataclass(frozen=True, slots=True)
class Timeline:
    """An ordered list of cues with the total duration."""

    routine_id: str
    title: str
    options: TimelineOptions
    cues: tuple[Cue, ...] = field(default_factory=tuple)
    total_ms: int = 0


# Pauses the coach adds around speech, in ms at pace 1 (pace scales them like rests).
BREATH_MS = 800
"""A short pause after a block of sentences."""
INTRO_GAP_MS = 1500
"""After the intro, before the first exercise."""
SETUP_STEP_MS = 2000
"""Time to follow one spoken set-up step."""
GET_READY_MS = 2000
"""After a side is announced, to get into position."""
EXERCISE_REST_MS = 5000
"""Rest between two exercises."""
HOLD_COUNT_INTERVAL_MS = 1000
"""Count words during a hold are said at this interval (not scaled: holds are a dose)."""
ENCOURAGE_EVERY_REPS = 3
"""Encouragement follows every this-many-th rep of a set (never after the set's last rep)."""

# The default speech-length estimate: words at the voice's rate, plus a little for the
# pauses a synthesizer makes at punctuation. Checked against espeak-ng (-s 140 and 175) on
# every sentence of the built-in routines: about 9% long in total, median error 15%.
COMMA_PAUSE_MS = 100
SENTENCE_PAUSE_MS = 150
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?…]+")
_CLAUSE_BREAK = re.compile(r"[,;:—–]")


def estimate_speech_ms(text: str, rate_wpm: int) -> int:
    """Estimated spoken length of ``text`` in ms at ``rate_wpm`` words per minute."""
    words = len(_WORD.findall(text))
    breaks = len(_CLAUSE_BREAK.findall(text))
    ends = len(_SENTENCE_END.findall(text))
    return round(words * 60_000 / rate_wpm) + breaks * COMMA_PAUSE_MS + ends * SENTENCE_PAUSE_MS


def scaled_ms(duration_ms: int, pace: float) -> int:
    """A movement, pause or rest of ``duration_ms`` (at pace 1) at ``pace``."""
    return round(duration_ms / pace)


def seconds_to_ms(seconds: float) -> int:
    """Routine seconds to timeline milliseconds."""
    return round(seconds * 1000)


def side_order(sides: Sides, options: TimelineOptions) -> tuple[Leg, ...]:
    """The legs an exercise works, in the order the session does them."""
    if sides is Sides.LEFT:
        return (Leg.LEFT,)
    if sides is Sides.RIGHT:
        return (Leg.RIGHT,)
    if sides is Sides.AFFECTED:
        return (options.affected_leg,)
    second = Leg.RIGHT if options.side_first is Leg.LEFT else Leg.LEFT
    return (options.side_first, second)


class _TimelineBuilder:
    """Appends cues end to end; the cursor is where the next timed cue starts."""

    def __init__(self, options: TimelineOptions, speech_ms: SpeechTimer) -> None:
        from coach.earcons import EARCON_MS  # here: coach.earcons imports this module

        self.options = options
        self._speech_ms = speech_ms
        self._earcon_ms = EARCON_MS
        self.cues: list[Cue] = []
        self.cursor_ms = 0
        self.encouragements_said = 0

    def say(self, text: str, role: Role) -> None:
        duration_ms = self.speech_length_ms(text)
        self._timed(Cue(self.cursor_ms, duration_ms, CueKind.SAY, text=text, role=role))

    def speech_length_ms(self, text: str) -> int:
        """The timer's length for ``text`` as a plain int (numpy integers are accepted)."""
        raw = self._speech_ms(text)
        try:
            duration_ms = operator.index(raw)
        except TypeError:
            duration_ms = -1
        if isinstance(raw, bool) or duration_ms < 0:
            raise ValueError(f"speech_ms must return a non-negative int, got {raw!r} for {text!r}")
        return duration_ms

    def pause(self, duration_ms: int) -> None:
        """A silence of exactly ``duration_ms`` (zero-length pauses are left out)."""
        if duration_ms > 0:
            self._timed(Cue(self.cursor_ms, duration_ms, CueKind.PAUSE))

    def paced_pause(self, duration_ms: int) -> None:
        """A pause, movement or rest: it stretches or shrinks with the pace."""
        self.pause(scaled_ms(duration_ms, self.options.pace))

    def tone(self, earcon: Earcon) -> None:
        self._timed(Cue(self.cursor_ms, self._earcon_ms[earcon], CueKind.TONE, earcon=earcon))

    def chapter(self, title: str, mark: Mark) -> None:
        self.cues.append(Cue(self.cursor_ms, 0, CueKind.CHAPTER, text=title, mark=mark))

    def mark(self, mark: Mark) -> None:
        self.cues.append(Cue(self.cursor_ms, 0, CueKind.MARK, mark=mark))

    def speech_fits(self, text: str, end_ms: int) -> bool:
        """Whether ``text`` said now ends by ``end_ms``."""
        return self.cursor_ms + self.speech_length_ms(text) <= end_ms

    def _timed(self, cue: Cue) -> None:
        self.cues.append(cue)
        self.cursor_ms = cue.end_ms


def compile_timeline(
    routine: Routine,
    options: TimelineOptions | None = None,
    speech_ms: SpeechTimer | None = None,
) -> Timeline:
    """Compile ``routine`` into a timeline.

    ``speech_ms`` gives the spoken length of each sentence; by default it is
    estimated from ``options.rate_wpm`` plus ``options.sentence_pause_ms``.
    Speech synthesis passes the measured length instead. Pure: the same
    arguments always give the same timeline.
    """
    options = options or TimelineOptions()
    if speech_ms is None:
        rate_wpm, pause_ms = options.rate_wpm, options.sentence_pause_ms

        def speech_ms(text: str) -> int:
            return estimate_speech_ms(text, rate_wpm) + pause_ms

    build = _TimelineBuilder(options, speech_ms)
    build.mark(Mark(Phase.SESSION_START))
    _intro(build, routine)
    for index, exercise in enumerate(routine.exercises):
        _exercise(build, routine, index, exercise)
    _outro(build)
    return Timeline(
        routine_id=routine.id,
        title=routine.title,
        options=options,
        cues=tuple(build.cues),
        total_ms=build.cursor_ms,
    )


def _intro(build: _TimelineBuilder, routine: Routine) -> None:
    safety = routine.safety
    build.say(phrases.welcome(routine.title), Role.INTRO)
    if build.options.returning_user:
        build.say(phrases.DISCLAIMER_REMINDER, Role.DISCLAIMER)
        build.say(phrases.RED_FLAGS_REMINDER, Role.RED_FLAGS)
        build.say(safety.stop_rule, Role.RED_FLAGS)
        build.paced_pause(BREATH_MS)
        build.say(phrases.COMMANDS_REMINDER, Role.COMMANDS)
    else:
        build.say(routine.description, Role.INTRO)
        build.paced_pause(BREATH_MS)
        build.say(safety.disclaimer, Role.DISCLAIMER)
        build.say(safety.red_flags, Role.RED_FLAGS)
        build.say(safety.stop_rule, Role.RED_FLAGS)
        build.paced_pause(BREATH_MS)
        build.say(phrases.COMMANDS_HELP, Role.COMMANDS)
    build.paced_pause(INTRO_GAP_MS)


def _outro(build: _TimelineBuilder) -> None:
    build.say(phrases.OUTRO, Role.OUTRO)
    build.tone(Earcon.SESSION_END)
    build.mark(Mark(Phase.SESSION_END))


def _exercise(build: _TimelineBuilder, routine: Routine, index: int, exercise: Exercise) -> None:
    def mark(phase: Phase, leg: Leg | None = None) -> Mark:
        return Mark(phase, exercise_id=exercise.id, exercise_index=index, leg=leg)

    build.chapter(exercise.name, mark(Phase.EXERCISE_START))
    build.mark(mark(Phase.EXERCISE_START))
    build.tone(Earcon.EXERCISE_START)
    build.say(phrases.exercise_title(index, len(routine.exercises), exercise.name), Role.SETUP)
    for step in exercise.setup:
        build.say(step, Role.SETUP)
        build.paced_pause(SETUP_STEP_MS)
    build.say(exercise.feel, Role.SETUP)
    build.say(exercise.stop_if, Role.SETUP)
    build.paced_pause(BREATH_MS)

    legs = side_order(exercise.sides, build.options)
    for side_index, leg in enumerate(legs):
        if side_index > 0:
            build.tone(Earcon.SIDE_SWITCH)
            build.say(phrases.SWITCH_SIDES, Role.SWITCH)
            build.paced_pause(seconds_to_ms(exercise.rest_between_sides_s))
        build.mark(mark(Phase.SIDE_START, leg))
        build.say(phrases.side_announcement(leg, side_index, len(legs)), Role.SWITCH)
        build.paced_pause(GET_READY_MS)
        for set_number in range(1, exercise.sets + 1):
            _set(build, index, exercise, leg, set_number)
            if set_number < exercise.sets:
                build.say(phrases.REST, Role.REST)
                build.paced_pause(seconds_to_ms(exercise.rest_between_sets_s))
        build.mark(mark(Phase.SIDE_END, leg))
    build.mark(mark(Phase.EXERCISE_END))
    if index < len(routine.exercises) - 1:
        build.say(phrases.exercise_done(exercise.name), Role.REST)
        build.paced_pause(EXERCISE_REST_MS)


def _set(
    build: _TimelineBuilder, index: int, exercise: Exercise, leg: Leg, set_number: int
) -> None:
    def mark(phase: Phase, rep_number: int | None = None) -> Mark:
        return Mark(
            phase,
            exercise_id=exercise.id,
            exercise_index=index,
            leg=leg,
            set_number=set_number,
            rep_number=rep_number,
        )

    build.mark(mark(Phase.SET_START))
    if exercise.sets > 1:
        build.say(phrases.set_announcement(set_number, exercise.sets), Role.COUNT)
    reps = exercise.reps_per_side
    for rep_number in range(1, reps + 1):
        build.mark(mark(Phase.REP_START, rep_number))
        for phase_index, rep_phase in enumerate(exercise.rep):
            _movement(build, exercise, rep_phase)
            if rep_phase.hold:
                last_phase = phase_index == len(exercise.rep) - 1
                _hold(
                    build,
                    exercise,
                    mark(Phase.HOLD_START, rep_number),
                    mark(Phase.HOLD_END, rep_number),
                    relax_after=last_phase,
                )
        build.mark(mark(Phase.REP_END, rep_number))
        build.say(phrases.rep_count(rep_number), Role.COUNT)
        if rep_number % ENCOURAGE_EVERY_REPS == 0 and rep_number < reps:
            build.say(phrases.encouragement(build.encouragements_said), Role.ENCOURAGE)
            build.encouragements_said += 1


def _movement(build: _TimelineBuilder, exercise: Exercise, rep_phase: RepPhase) -> None:
    # The cue is spoken first, then the movement gets its full tempo: speaking while
    # moving would make the movement time depend on the length of the sentence.
    build.say(rep_phase.say, Role.MOVE)
    build.paced_pause(seconds_to_ms(exercise.tempo_s))


def _hold(
    build: _TimelineBuilder,
    exercise: Exercise,
    start: Mark,
    end: Mark,
    *,
    relax_after: bool,
) -> None:
    """A counted hold: exactly ``hold_s`` between the HOLD_START and HOLD_END marks."""
    assert exercise.hold_s is not None  # guaranteed by Exercise validation
    hold_ms = seconds_to_ms(exercise.hold_s)
    build.tone(Earcon.HOLD_START)
    build.mark(start)
    start_ms = build.cursor_ms
    end_ms = start_ms + hold_ms
    for second in range(math.ceil(hold_ms / HOLD_COUNT_INTERVAL_MS)):
        tick_ms = start_ms + second * HOLD_COUNT_INTERVAL_MS
        if tick_ms < build.cursor_ms:
            continue  # the previous word ran long: skip this count rather than drift
        word = phrases.hold_count_word(second)
        build.pause(tick_ms - build.cursor_ms)
        if not build.speech_fits(word, end_ms):
            break
        build.say(word, Role.COUNT)
    build.pause(end_ms - build.cursor_ms)
    build.mark(end)
    build.tone(Earcon.HOLD_END)
    if relax_after:
        build.say(phrases.RELAX, Role.MOVE)
        build.paced_pause(seconds_to_ms(exercise.tempo_s))


def mark_json(mark: Mark) -> dict[str, Any]:
    """A mark as JSON-ready data: only the fields that are set."""
    data: dict[str, Any] = {"phase": mark.phase.value}
    for name in ("exercise_id", "exercise_index", "leg", "set_number", "rep_number"):
        value = getattr(mark, name)
        if value is not None:
            data[name] = str(value) if isinstance(value, StrEnum) else value
    return data


def cue_json(cue: Cue) -> dict[str, Any]:
    """A cue as JSON-ready data: offsets, kind, and only the fields that are set."""
    data: dict[str, Any] = {
        "at_ms": cue.at_ms,
        "duration_ms": cue.duration_ms,
        "kind": cue.kind.value,
    }
    if cue.text is not None:
        data["text"] = cue.text
    if cue.role is not None:
        data["role"] = cue.role.value
    if cue.earcon is not None:
        data["earcon"] = cue.earcon.value
    if cue.mark is not None:
        data["mark"] = mark_json(cue.mark)
    return data


def timeline_json(timeline: Timeline) -> dict[str, Any]:
    """The timeline as ``{"routine": id, "total_ms": N, "cues": [...]}``."""
    return {
        "routine": timeline.routine_id,
        "total_ms": timeline.total_ms,
        "cues": [cue_json(cue) for cue in timeline.cues],
    }
