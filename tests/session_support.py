"""Fakes at the device boundary for session tests: a clock, a speaker, sounds, a journal.

Nothing here sleeps: :func:`drive` jumps the fake clock from one interesting moment to
the next (a cue due, a command scheduled, the speaker going quiet, a deadline).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coach.earcons import EARCON_MS
from coach.listen.commands import Command, CommandEvent
from coach.routine import Routine
from coach.session import (
    DoseToday,
    Messages,
    Outcome,
    Session,
    SessionSettings,
    Sound,
    State,
    Where,
)
from coach.timeline import (
    Earcon,
    Leg,
    Timeline,
    TimelineOptions,
    compile_timeline,
    estimate_speech_ms,
)

FAKE_RATE_HZ = 1000
"""Fake sounds are silence at 1 kHz: one sample per ms, so lengths are exact."""
FAKE_WPM = 150


def fake_speech_ms(text: str) -> int:
    """Spoken length of ``text`` for the fakes (and the timeline they compile)."""
    return max(200, estimate_speech_ms(text, FAKE_WPM))


class FakeSounds:
    """Silent sounds as long as the text would take to say."""

    def speech(self, text: str) -> Sound:
        return Sound(np.zeros(fake_speech_ms(text), dtype=np.float32), FAKE_RATE_HZ, text)

    def tone(self, earcon: Earcon) -> Sound:
        return Sound(np.zeros(EARCON_MS[earcon], dtype=np.float32), FAKE_RATE_HZ, None)


class FakeClock:
    """A monotonic clock that only moves when told."""

    def __init__(self, now_ms: int = 1_000) -> None:
        self.now_ms = now_ms


@dataclass
class Played:
    """One sound as the fake speaker played it."""

    text: str | None
    start_ms: int
    end_ms: int
    uninterruptible: bool
    planned_end_ms: int
    interrupted: bool = False


class FakeSpeaker:
    """Plays sounds back to back on the fake clock; interruption cuts at the current ms."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.played: list[Played] = []
        self.interrupts: list[int] = []

    @property
    def busy_until_ms(self) -> int:
        return max((p.end_ms for p in self.played), default=0)

    def play(self, sound: Sound, *, uninterruptible: bool = False) -> None:
        start = max(self.clock.now_ms, self.busy_until_ms)
        end = start + sound.duration_ms
        self.played.append(Played(sound.text, start, end, uninterruptible, end))

    def interrupt(self) -> None:
        now = self.clock.now_ms
        self.interrupts.append(now)
        kept: list[Played] = []
        cursor = now
        for item in self.played:
            if item.end_ms <= now:
                kept.append(item)
            elif item.uninterruptible:
                if item.start_ms > now:  # queued: moves up behind what still plays
                    length = item.end_ms - item.start_ms
                    item.start_ms = max(cursor, now)
                    item.end_ms = item.planned_end_ms = item.start_ms + length
                cursor = item.end_ms
                kept.append(item)
            elif item.start_ms <= now:  # playing: cut now
                item.end_ms = now
                item.interrupted = True
                kept.append(item)
            # queued and interruptible: dropped
        self.played = kept

    def is_idle(self) -> bool:
        return self.clock.now_ms >= self.busy_until_ms

    # -- for assertions ----------------------------------------------------------------------

    def texts(self) -> list[str]:
        """Sentences started, in order (tones left out)."""
        return [p.text for p in self.played if p.text is not None]

    def audible_at(self, at_ms: int) -> Played | None:
        """What is sounding at ``at_ms``."""
        for item in self.played:
            if item.start_ms <= at_ms < item.end_ms:
                return item
        return None

    def first(self, text: str) -> Played:
        """The first time ``text`` was played (AssertionError if never)."""
        for item in self.played:
            if item.text == text:
                return item
        raise AssertionError(f"never said {text!r}; said: {self.texts()}")

    def count(self, text: str) -> int:
        return sum(1 for p in self.played if p.text == text)


@dataclass
class FakeRecord:
    """Keeps what the session journals."""

    reps: list[tuple[Where, int]] = field(default_factory=list)
    commands: list[tuple[Command, State, int]] = field(default_factory=list)
    pains: list[tuple[Where, int]] = field(default_factory=list)
    outcome: Outcome | None = None
    reps_by_leg: dict[Leg, int] = field(default_factory=dict)
    note: str = ""
    finished_calls: int = 0

    def rep_done(self, where: Where, at_ms: int) -> None:
        self.reps.append((where, at_ms))

    def command_heard(self, event: CommandEvent, state: State, at_ms: int) -> None:
        self.commands.append((event.command, state, at_ms))

    def pain_reported(self, where: Where, at_ms: int) -> None:
        self.pains.append((where, at_ms))

    def finished(self, outcome: Outcome, reps_by_leg: dict[Leg, int], note: str) -> None:
        self.outcome = outcome
        self.reps_by_leg = reps_by_leg
        self.note = note
        self.finished_calls += 1


def event(command: Command, at_ms: int = 0) -> CommandEvent:
    """A command as the listener would report it."""
    return CommandEvent(
        command=command,
        phrase=command.value.lower(),
        confidence=1.0,
        word_end_ms=at_ms,
        detected_ms=at_ms,
    )


def exercise_data(**overrides: Any) -> dict[str, Any]:
    """A small valid exercise (2 reps, a 3 s hold); keyword arguments replace fields."""
    data: dict[str, Any] = {
        "id": "lying",
        "name": "the lying glide",
        "source": "src",
        "position": "lying_on_back",
        "sides": "left",
        "reps_per_side": 2,
        "sets": 1,
        "hold_s": 3.0,
        "tempo_s": 2.0,
        "rest_between_sets_s": 5.0,
        "rest_between_sides_s": 4.0,
        "setup": ["Lie on your back with both knees bent."],
        "rep": [
            {"say": "Straighten the knee, toes toward you.", "hold": True},
            {"say": "Bend the knee back down."},
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


SEATED = {
    "id": "seated",
    "name": "the seated glide",
    "position": "seated",
    "sides": "both",
    "setup": ["Sit upright on a chair."],
    "rep": [{"say": "Straighten the leg, flex the foot.", "hold": True}, {"say": "Lower it."}],
}


def make_routine(*exercises: dict[str, Any], max_reps: int = 60, max_sessions: int = 3) -> Routine:
    """Two exercises by default: the lying glide (left) then the seated glide (both legs)."""
    chosen = list(exercises) or [exercise_data(), exercise_data(**SEATED)]
    return Routine.model_validate(
        {
            "id": "test-session",
            "title": "a test session",
            "description": "A short routine for session tests.",
            "sources": [{"id": "src", "title": "A source text", "site": "example.org"}],
            "safety": {
                "disclaimer": "This coach is not a medical device.",
                "red_flags": "Get urgent care for numbness around the groin.",
                "stop_rule": "Stop at sharp pain.",
                "limits": {
                    "max_reps_per_leg_per_day": max_reps,
                    "max_sessions_per_day": max_sessions,
                },
            },
            "exercises": chosen,
        }
    )


def fake_compile(routine: Routine, options: TimelineOptions) -> Timeline:
    return compile_timeline(routine, options, fake_speech_ms)


Script = Sequence[tuple[int, Command | Sequence[Command]]]
"""Commands to say, at ms after the session started; several at once as a sequence."""


@dataclass
class Rig:
    """A session wired to fakes."""

    session: Session
    clock: FakeClock
    speaker: FakeSpeaker
    record: FakeRecord

    @property
    def t0(self) -> int:
        return self.session.started_ms

    def drive(self, script: Script = (), *, until_ms: int | None = None) -> Rig:
        """Run until the session ends (or ``until_ms`` after it started), saying ``script``."""
        drive(self, script, until_ms=until_ms)
        return self

    def timeline(self) -> Timeline:
        assert self.session.timeline is not None
        return self.session.timeline

    def said(self) -> list[str]:
        return self.speaker.texts()


def make_rig(
    routine: Routine | None = None,
    *,
    options: TimelineOptions | None = None,
    settings: SessionSettings | None = None,
    today: DoseToday | None = None,
    messages: Messages | None = None,
) -> Rig:
    clock = FakeClock()
    speaker = FakeSpeaker(clock)
    record = FakeRecord()
    session = Session(
        routine or make_routine(),
        options or TimelineOptions(),
        fake_compile,
        speaker,
        FakeSounds(),
        record,
        settings=settings,
        messages=messages,
        today=today,
    )
    return Rig(session, clock, speaker, record)


def _batches(script: Script) -> list[tuple[int, list[Command]]]:
    batches: list[tuple[int, list[Command]]] = []
    for at_ms, what in script:
        commands = [what] if isinstance(what, Command) else list(what)
        batches.append((at_ms, commands))
    return sorted(batches, key=lambda item: item[0])


def drive(rig: Rig, script: Script = (), *, until_ms: int | None = None) -> None:
    """Advance the fake clock event by event; commands arrive at their scripted times."""
    session, clock = rig.session, rig.clock
    if session.state is State.STARTING:
        session.start(clock.now_ms)
    start = session.started_ms
    pending = _batches(script)
    limit = start + until_ms if until_ms is not None else start + 3_600_000
    wake = session.tick(clock.now_ms)
    steps = 0
    while not session.ended and clock.now_ms < limit:
        steps += 1
        assert steps < 200_000, "session does not make progress"
        candidates: list[int] = [limit]
        if wake is not None:
            candidates.append(wake)
        if pending:
            candidates.append(start + pending[0][0])
        if rig.speaker.busy_until_ms > clock.now_ms:
            candidates.append(rig.speaker.busy_until_ms)
        clock.now_ms = max(clock.now_ms, min(candidates))
        due: list[Command] = []
        while pending and start + pending[0][0] <= clock.now_ms:
            due.extend(pending.pop(0)[1])
        if due:
            session.on_commands([event(c, clock.now_ms - start) for c in due], clock.now_ms)
        wake = session.tick(clock.now_ms)
        if wake is not None and wake <= clock.now_ms and not session.ended:
            wake = clock.now_ms + 1


def sequence_of(items: Iterable[Played]) -> list[str | None]:
    return [item.text for item in items]
