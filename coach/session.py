"""The live session: a state machine driven by the timeline, a monotonic clock and commands.

The session never sleeps and never touches a device itself. Whoever drives it (the real
runner in :mod:`coach.session_runner`, or a fake clock in tests) calls
:meth:`Session.tick` with the current time and :meth:`Session.on_commands` with the
commands heard; the session plays sounds through an injected :class:`Speaker` and
records what happened through an injected :class:`SessionRecord`.

Timing: cue ``i`` of the timeline starts at ``origin_ms + cues[i].at_ms``. Pausing,
repeating, skipping and changing pace only move ``origin_ms`` (and the cue cursor), so
cue start times are computed from the timeline and never accumulate drift.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from coach.listen.commands import Command, CommandEvent
from coach.routine import Routine, Sides
from coach.timeline import (
    Cue,
    CueKind,
    Earcon,
    Leg,
    Mark,
    Phase,
    Role,
    Timeline,
    TimelineOptions,
    side_order,
)

_log = logging.getLogger(__name__)


class State(StrEnum):
    """Where the session is; every change goes through ``Session._go``."""

    STARTING = "starting"
    """Created, nothing said yet."""
    RUNNING = "running"
    """Playing the timeline's cues."""
    ASKING = "asking"
    """Waiting for a spoken answer (which leg, a shorter session, what to do after pain)."""
    PAUSED = "paused"
    """Silent after STOP or PAUSE, waiting for RESUME."""
    SAFETY = "safety"
    """Saying the uninterruptible safety message after PAIN."""
    ENDING = "ending"
    """Saying the last words before the session ends."""
    ENDED = "ended"
    """Finished; the outcome is recorded."""


class Question(StrEnum):
    """What the coach asked while in ``State.ASKING``."""

    LEG = "leg"
    SHORTER_SESSION = "shorter_session"
    AFTER_PAIN = "after_pain"


class Outcome(StrEnum):
    """How a session ended (journaled)."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    PAIN = "pain"
    NO_ANSWER = "no_answer"
    DOSE_LIMIT = "dose_limit"
    DEVICE_LOST = "device_lost"
    INTERRUPTED = "interrupted"


PRIORITY: dict[Command, int] = {Command.PAIN: 0, Command.STOP: 1}
"""Lower acts first: PAIN preempts STOP, which preempts everything else."""
_DEFAULT_PRIORITY = 5


def priority(command: Command) -> int:
    """The priority of ``command`` (lower wins when several arrive together)."""
    return PRIORITY.get(command, _DEFAULT_PRIORITY)


@dataclass(frozen=True, slots=True)
class Sound:
    """Audio the speaker plays: float32 mono PCM, and the words it says (None for tones)."""

    pcm: npt.NDArray[np.float32]
    sample_rate_hz: int
    text: str | None = None

    @property
    def duration_ms(self) -> int:
        """Length of the sound in ms."""
        return round(len(self.pcm) * 1000 / self.sample_rate_hz)


class Speaker(Protocol):
    """Plays sounds one after another; can be silenced at once."""

    def play(self, sound: Sound, *, uninterruptible: bool = False) -> None:
        """Queue ``sound`` after whatever is playing."""

    def interrupt(self) -> None:
        """Fade out what is playing and drop what is queued, except uninterruptible sounds."""

    def is_idle(self) -> bool:
        """True when nothing is playing or queued."""


class SoundBank(Protocol):
    """Turns sentences and earcons into sounds (synthesis, cached)."""

    def speech(self, text: str) -> Sound:
        """``text`` spoken by the session's voice."""

    def tone(self, earcon: Earcon) -> Sound:
        """The earcon ``earcon``."""


@dataclass(frozen=True, slots=True)
class Where:
    """The point of the routine the session is at (for pain reports, reps and the status)."""

    exercise_id: str | None = None
    exercise_index: int | None = None
    exercise_name: str | None = None
    leg: Leg | None = None
    set_number: int | None = None
    rep_number: int | None = None


class SessionRecord(Protocol):
    """Where the session writes what happened (the journal); each call is committed."""

    def rep_done(self, where: Where, at_ms: int) -> None:
        """A repetition was completed (``at_ms`` since the session started)."""

    def command_heard(self, event: CommandEvent, state: State, at_ms: int) -> None:
        """A command was heard while the session was in ``state``."""

    def pain_reported(self, where: Where, at_ms: int) -> None:
        """The user reported pain at ``where``."""

    def finished(self, outcome: Outcome, reps_by_leg: dict[Leg, int], note: str) -> None:
        """The session ended."""


@dataclass(frozen=True, slots=True)
class DoseToday:
    """What the journal says was already done today (before this session)."""

    reps_by_leg: dict[Leg, int] = field(default_factory=dict)
    """Completed repetitions per leg today; AFFECTED counts against both legs."""
    sessions: int = 0
    """Sessions already started today."""


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """How the session behaves; times in ms."""

    listening: bool = True
    """Whether commands can be heard; without it nothing is asked and defaults are taken."""
    answer_timeout_ms: int = 30_000
    """How long to wait for an answer after pain or about a shorter session."""
    leg_timeout_ms: int = 15_000
    """How long to wait for 'left or right'; then the wording stays generic."""
    pause_timeout_ms: int = 120_000
    """Silence while paused after which the session ends with a summary."""
    same_stop_ms: int = 1500
    """A STOP this soon after the pause began is the same request (a person saying "stop,
    stop!", or one word the listener heard twice): the session stays paused. A later STOP
    (the answer to "Paused. Say resume to carry on, or stop to end.") ends it."""
    pace_step: float = 0.2
    """SLOWER / FASTER change the pace by this much."""
    min_pace: float = 0.6
    max_pace: float = 1.4
    gap_ms: int = 400
    """Silence between a spoken confirmation and the next timeline cue."""
    safety_pause_ms: int = 500
    """Silence between the interrupted speech and the safety message."""
    poll_ms: int = 20
    """How often to look at the speaker while waiting for it to finish."""
    notice: str | None = None
    """Said first of all (e.g. why voice control is off)."""


@dataclass(frozen=True, slots=True)
class Messages:
    """Everything the session says on its own (the timeline says the rest)."""

    safety: str = "Stop moving. Let your leg rest in a comfortable position, and breathe slowly."
    after_pain_offer: str = (
        "When you are ready, tell me what to do. Say gentler to carry on with a smaller, "
        "gentler range, skip to skip this exercise, or end to finish for today."
    )
    gentler: str = (
        "We'll carry on with a smaller, gentler range. Only move as far as feels comfortable."
    )
    second_pain: str = (
        "That is the second time it hurt today, so we will end the session here. "
        "Rest, and if the pain persists or gets worse, please check with a clinician."
    )
    end_after_pain: str = (
        "We'll end here for today. Rest, and if the pain persists, please check with a clinician."
    )
    no_answer: str = "I didn't hear an answer, so we'll stop here for today. Rest and take it easy."
    paused: str = "Paused. Say resume to carry on, or stop to end."
    resumed: str = "Carrying on."
    still_paused: str = "Still paused. Say resume to carry on, or stop to end."
    pause_timeout: str = "We have been paused for a while, so I'll end the session here."
    help: str = (
        "You can say: pain, if anything hurts. Stop, to pause, and stop again to end. "
        "Next, to skip to the next exercise. Pause and resume. Repeat, to hear the last "
        "instruction again. Slower or faster, to change the pace. And help, to hear this again."
    )
    skipping_to: str = "Skipping to {name}."
    last_exercise: str = "That was the last exercise."
    slower: str = "Slower."
    faster: str = "Faster."
    slowest: str = "This is already the slowest pace."
    fastest: str = "This is already the fastest pace."
    ask_leg: str = (
        "Which leg is the painful one today? If it is your left leg, say yes. "
        "If it is your right leg, say no."
    )
    leg_chosen: str = "The {leg} leg, then."
    leg_default: str = "I didn't catch that, so I'll just say your painful leg."
    sessions_limit: str = (
        "You have already done {done} sessions today, which is this routine's daily limit. "
        "More is not better, so let's rest today and carry on tomorrow."
    )
    reps_limit: str = (
        "You have already done {done} glides with the {leg} leg today, which is this "
        "routine's daily limit of {limit}. More is not better, so let's rest today."
    )
    offer_shorter: str = (
        "You have already done {done} glides with the {leg} leg today, and this session "
        "would go past the daily limit of {limit}. I can do a shorter session instead, with "
        "{reps} repetitions a side. Say yes for the shorter session, or no to finish for today."
    )
    shorter_chosen: str = "A shorter session, then, with {reps} repetitions a side."
    summary: str = "We'll stop here. {reps} Well done, and rest well."
    summary_reps: str = "Today you did {parts}."
    declined: str = "Okay. Let's rest today and carry on tomorrow."
    shorter_automatic: str = (
        "You have already done {done} glides with the {leg} leg today, and the daily limit "
        "is {limit}, so today's session is shorter, with {reps} repetitions a side."
    )


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """A snapshot for the status line."""

    state: State
    where: Where
    reps_per_side: int | None
    hold_left_ms: int | None
    last_command: str | None
    pace: float
    elapsed_ms: int
    question: Question | None


TimelineCompiler = Callable[[Routine, TimelineOptions], Timeline]
"""Compiles a routine at the given options (the real one passes measured speech lengths)."""

_INSTRUCTION_ROLES = frozenset(
    {
        Role.INTRO,
        Role.DISCLAIMER,
        Role.RED_FLAGS,
        Role.COMMANDS,
        Role.SETUP,
        Role.SWITCH,
        Role.REST,
        Role.OUTRO,
    }
)
"""SAY roles that a resumed session says again rather than skipping."""
_BOUNDARY_PHASES = frozenset({Phase.REP_END, Phase.SIDE_END, Phase.EXERCISE_END})

_CARRY_ON = frozenset({Command.GENTLER, Command.YES, Command.RESUME})
_SKIP = frozenset({Command.SKIP, Command.NEXT})
_END = frozenset({Command.END, Command.STOP, Command.NO})


def without_roles(timeline: Timeline, roles: Iterable[Role]) -> Timeline:
    """``timeline`` without the SAY cues of ``roles``; later cues move earlier to close gaps."""
    drop = frozenset(roles)
    cues: list[Cue] = []
    shift_ms = 0
    for cue in timeline.cues:
        if cue.kind is CueKind.SAY and cue.role in drop:
            shift_ms += cue.duration_ms
            continue
        cues.append(replace(cue, at_ms=cue.at_ms - shift_ms))
    return replace(timeline, cues=tuple(cues), total_ms=timeline.total_ms - shift_ms)


def reps_by_leg(routine: Routine, options: TimelineOptions) -> dict[Leg, int]:
    """Repetitions per leg the routine asks for; an unchosen affected leg counts for both."""
    totals = {Leg.LEFT: 0, Leg.RIGHT: 0}
    for exercise in routine.exercises:
        for leg in side_order(exercise.sides, options):
            reps = exercise.reps_per_side * exercise.sets
            for counted in (Leg.LEFT, Leg.RIGHT) if leg is Leg.AFFECTED else (leg,):
                totals[counted] += reps
    return totals


def capped_routine(routine: Routine, reps_per_side: int) -> Routine:
    """``routine`` with no exercise doing more than ``reps_per_side`` per side and set."""
    exercises = [
        exercise.model_copy(update={"reps_per_side": min(exercise.reps_per_side, reps_per_side)})
        for exercise in routine.exercises
    ]
    return routine.model_copy(update={"exercises": exercises})


def fitting_reps_cap(routine: Routine, options: TimelineOptions, today: DoseToday) -> int | None:
    """The largest reps-per-side cap that keeps every leg within the daily limit.

    None when the routine fits as it is; 0 when not even one repetition fits.
    """
    limit = routine.safety.limits.max_reps_per_leg_per_day

    def fits(candidate: Routine) -> bool:
        planned = reps_by_leg(candidate, options)
        return all(today.reps_by_leg.get(leg, 0) + planned[leg] <= limit for leg in planned)

    if fits(routine):
        return None
    most = max(exercise.reps_per_side for exercise in routine.exercises)
    for cap in range(most - 1, 0, -1):
        if fits(capped_routine(routine, cap)):
            return cap
    return 0


def resume_index(cues: Sequence[Cue], cursor: int) -> int:
    """Where to carry on after an interruption when cues before ``cursor`` have started.

    Inside a repetition: its start (the rep is done again). After a sentence that
    instructs (setup, side switch, rest...): that sentence. Between repetitions: the
    next cue.
    """
    for index in range(min(cursor, len(cues)) - 1, -1, -1):
        cue = cues[index]
        if cue.kind is CueKind.MARK and cue.mark is not None:
            if cue.mark.phase is Phase.REP_START:
                return index
            if cue.mark.phase in _BOUNDARY_PHASES:
                return cursor
        elif cue.kind is CueKind.CHAPTER or _instructs(cue):
            return index
    return 0


def _instructs(cue: Cue) -> bool:
    return cue.kind is CueKind.SAY and cue.role in _INSTRUCTION_ROLES


def instruction_index(cues: Sequence[Cue], cursor: int) -> int | None:
    """The current instruction for REPEAT: the last started setup or movement sentence.

    Before the first exercise, the last started instructing sentence of the intro.
    """
    for index in range(min(cursor, len(cues)) - 1, -1, -1):
        cue = cues[index]
        if cue.kind is CueKind.SAY and cue.role in (Role.SETUP, Role.MOVE):
            return index
        if cue.kind is CueKind.CHAPTER:
            break
    for index in range(min(cursor, len(cues)) - 1, -1, -1):
        cue = cues[index]
        if cue.kind is CueKind.SAY and cue.role in _INSTRUCTION_ROLES:
            return index
    return None


def locate(old: Sequence[Cue], index: int, new: Sequence[Cue]) -> int:
    """The index in ``new`` of the cue at ``index`` in ``old`` (a recompiled timeline).

    Cues are found relative to the nearest mark before them, so a timeline compiled at a
    different pace (different offsets, same structure) maps one to one.
    """
    anchor = -1
    for candidate in range(min(index, len(old) - 1), -1, -1):
        if old[candidate].kind is CueKind.MARK:
            anchor = candidate
            break
    if anchor < 0:
        return min(index, len(new))
    mark = old[anchor].mark
    steps = index - anchor
    for position, cue in enumerate(new):
        if cue.kind is CueKind.MARK and _same_place(cue.mark, mark):
            return min(position + steps, len(new))
    return min(index, len(new))


def _same_place(a: Mark | None, b: Mark | None) -> bool:
    if a is None or b is None:
        return a is b
    if a == b:
        return True
    # The leg may change from AFFECTED to a chosen leg between compilations.
    generic = a.leg is Leg.AFFECTED or b.leg is Leg.AFFECTED
    return generic and replace(a, leg=None) == replace(b, leg=None)


class Session:
    """One live session: plays the timeline, reacts to commands, records what happened."""

    def __init__(
        self,
        routine: Routine,
        options: TimelineOptions,
        compile_timeline: TimelineCompiler,
        speaker: Speaker,
        sounds: SoundBank,
        record: SessionRecord,
        *,
        settings: SessionSettings | None = None,
        messages: Messages | None = None,
        today: DoseToday | None = None,
    ) -> None:
        self.routine = routine
        self.options = options
        self._compile = compile_timeline
        self.speaker = speaker
        self.sounds = sounds
        self.record = record
        self.settings = settings or SessionSettings()
        self.messages = messages or Messages()
        self.today = today or DoseToday()

        self.state = State.STARTING
        self.question: Question | None = None
        self.outcome: Outcome | None = None
        self.trace: list[tuple[int, State]] = []
        """Every state entered, with the time (ms on the session clock)."""
        self.timeline: Timeline | None = None
        self.cursor = 0
        self.origin_ms = 0
        self.started_ms = 0
        self.where = Where()
        self.pain_reports = 0
        self.last_command: str | None = None
        self.reps_done: dict[Leg, int] = {}

        self._deadline_ms: int | None = None
        self._shorter_cap = 0
        self._shorter_text = ""
        self._resume_at: int | None = None
        """Timeline index to carry on from after a pause, a question or pain."""
        self._paused_ms: int | None = None
        """When the session last paused (see SessionSettings.same_stop_ms)."""
        self._leg_pending = False
        self._end_after_safety: Outcome | None = None
        self._end_note = ""
        self._logged_reps: set[Mark] = set()
        self._hold_end_ms: int | None = None
        self._now_ms = 0

    # -- driving ---------------------------------------------------------------------------

    def start(self, now_ms: int) -> None:
        """Begin: the notice, the dose check, then the timeline (or a question)."""
        if self.state is not State.STARTING:
            return
        self._now_ms = now_ms
        self.started_ms = now_ms
        self.trace.append((now_ms, State.STARTING))
        spoken_ms = self._say(self.settings.notice) if self.settings.notice else 0
        self._dose_check(now_ms + spoken_ms)

    def tick(self, now_ms: int) -> int | None:
        """Do whatever is due at ``now_ms``; returns when to be called next (None: idle)."""
        self._now_ms = now_ms
        if self.state is State.RUNNING:
            self._play_due_cues(now_ms)
        if self.state is State.RUNNING:
            return self._running_wake(now_ms)
        if self.state in (State.SAFETY, State.ENDING):
            if self.speaker.is_idle():
                self._after_speech(now_ms)
                return self._wake(now_ms)
            return now_ms + self.settings.poll_ms
        if self.state in (State.ASKING, State.PAUSED):
            if self._deadline_ms is not None and now_ms >= self._deadline_ms:
                self._on_timeout(now_ms)
                return self._wake(now_ms)
            return self._deadline_ms
        return None

    def _wake(self, now_ms: int) -> int | None:
        if self.state is State.ENDED:
            return None
        if self.state in (State.SAFETY, State.ENDING):
            return now_ms + self.settings.poll_ms
        if self.state is State.RUNNING:
            return self._running_wake(now_ms)
        return self._deadline_ms

    def _running_wake(self, now_ms: int) -> int | None:
        assert self.timeline is not None
        if self.cursor < len(self.timeline.cues):
            return self.origin_ms + self.timeline.cues[self.cursor].at_ms
        return now_ms + self.settings.poll_ms

    def on_commands(self, events: Sequence[CommandEvent], now_ms: int) -> None:
        """Commands heard together: all are recorded, the one with the highest priority acts."""
        if not events:
            return
        self._now_ms = now_ms
        heard_in = self.state
        chosen = min(events, key=lambda event: priority(event.command))
        self.last_command = chosen.command.value
        # React first, then journal: each journal entry is committed to disk (synchronous
        # FULL), which can take tens of ms on an SD card, and PAIN must silence the coach
        # at once.
        try:
            self._handle(chosen.command, now_ms)
        finally:
            for event in events:
                self.record.command_heard(event, heard_in, now_ms - self.started_ms)

    def on_command(self, event: CommandEvent, now_ms: int) -> None:
        """One command heard."""
        self.on_commands([event], now_ms)

    def abort(self, now_ms: int, outcome: Outcome, note: str = "") -> None:
        """End at once without speaking (Ctrl-C, a lost device)."""
        if self.state is State.ENDED:
            return
        self._now_ms = now_ms
        try:
            self.speaker.interrupt()
        except Exception:  # the device may be the thing that failed; ending matters more
            _log.debug("interrupt failed while aborting", exc_info=True)
        self._finish(now_ms, outcome, note)

    def end(self, now_ms: int, outcome: Outcome, text: str) -> None:
        """End the session after saying ``text`` (e.g. the microphone stopped working)."""
        self._now_ms = now_ms
        if self.state is State.ENDED:
            return
        if self.state is State.SAFETY:
            self._end_after_safety, self._end_note = outcome, text
            return
        self._end_with(now_ms, outcome, text)

    def announce(self, text: str, now_ms: int) -> None:
        """Say ``text`` now; a running timeline carries on afterwards from its resume point."""
        self._now_ms = now_ms
        if self.state is State.RUNNING:
            self._interjection(text, now_ms)
        elif self.state not in (State.ENDED, State.STARTING):
            self._say(text)

    def stop_listening(self, now_ms: int, text: str) -> None:
        """Voice control is gone: say so; from now on nothing is asked."""
        self.settings = replace(self.settings, listening=False)
        self.announce(text, now_ms)

    @property
    def ended(self) -> bool:
        """True once the session is over."""
        return self.state is State.ENDED

    def status(self, now_ms: int) -> SessionStatus:
        """A snapshot for the status line."""
        hold_left = None
        if self._hold_end_ms is not None and self.state is State.RUNNING:
            hold_left = max(0, self._hold_end_ms - now_ms) or None
        reps_per_side = None
        if self.where.exercise_index is not None:
            reps_per_side = self.routine.exercises[self.where.exercise_index].reps_per_side
        return SessionStatus(
            state=self.state,
            where=self.where,
            reps_per_side=reps_per_side,
            hold_left_ms=hold_left,
            last_command=self.last_command,
            pace=self.options.pace,
            elapsed_ms=now_ms - self.started_ms,
            question=self.question,
        )

    # -- the one place where the state changes ---------------------------------------------

    def _go(self, state: State, now_ms: int, *, question: Question | None = None) -> None:
        _log.info("session: %s -> %s%s", self.state, state, f" ({question})" if question else "")
        self.state = state
        self.question = question if state is State.ASKING else None
        if state is not State.RUNNING:
            self._hold_end_ms = None
        self.trace.append((now_ms, state))

    # -- commands --------------------------------------------------------------------------

    def _handle(self, command: Command, now_ms: int) -> None:
        if self.state is State.ENDED or self.state is State.STARTING:
            return
        if command is Command.PAIN:
            self._on_pain(now_ms)
        elif self.state is State.RUNNING:
            self._command_running(command, now_ms)
        elif self.state is State.PAUSED:
            self._command_paused(command, now_ms)
        elif self.state is State.ASKING:
            self._command_asking(command, now_ms)
        elif self.state is State.SAFETY:
            if command in (Command.STOP, Command.END):
                # Ending is always safe to honour; the safety message still finishes.
                self._end_after_safety = self._end_after_safety or Outcome.PAIN
                self._end_note = self._end_note or self.messages.end_after_pain
        elif self.state is State.ENDING and command is Command.STOP:
            self.speaker.interrupt()
            if self.speaker.is_idle():
                self._finish(now_ms, self.outcome or Outcome.STOPPED, self._end_note)

    def _command_running(self, command: Command, now_ms: int) -> None:
        if command in (Command.STOP, Command.PAUSE):
            self._pause(now_ms)
        elif command in (Command.NEXT, Command.SKIP):
            self._skip_exercise(now_ms)
        elif command is Command.REPEAT:
            self._repeat(now_ms)
        elif command in (Command.SLOWER, Command.FASTER):
            self._change_pace(command, now_ms)
        elif command is Command.HELP:
            self._interjection(self.messages.help, now_ms)
        elif command is Command.END:
            self._end_with_summary(now_ms, Outcome.STOPPED)

    def _command_paused(self, command: Command, now_ms: int) -> None:
        if command in (Command.RESUME, Command.REPEAT, Command.YES):
            self._resume(now_ms, self.messages.resumed)
        elif command is Command.STOP and self._same_stop(now_ms):
            return  # the STOP that paused, said (or heard) twice: stay paused
        elif command in (Command.STOP, Command.END):
            self._end_with_summary(now_ms, Outcome.STOPPED)
        elif command in (Command.NEXT, Command.SKIP):
            self._skip_exercise(now_ms)
        elif command in (Command.SLOWER, Command.FASTER):
            self._change_pace(command, now_ms)
        elif command is Command.HELP:
            self.speaker.interrupt()
            spoken = self._say(self.messages.help)
            self._deadline_ms = now_ms + spoken + self.settings.pause_timeout_ms
        elif command is Command.PAUSE:
            self.speaker.interrupt()
            spoken = self._say(self.messages.still_paused)
            self._deadline_ms = now_ms + spoken + self.settings.pause_timeout_ms

    def _command_asking(self, command: Command, now_ms: int) -> None:
        if self.question is Question.AFTER_PAIN:
            if command in _CARRY_ON:
                self._resume(now_ms, self.messages.gentler)
            elif command in _SKIP:
                self._skip_exercise(now_ms)
            elif command in _END:
                self._end_with(now_ms, Outcome.PAIN, self.messages.end_after_pain)
            elif command in (Command.REPEAT, Command.HELP):
                self._ask(Question.AFTER_PAIN, self.messages.after_pain_offer, now_ms)
        elif self.question is Question.SHORTER_SESSION:
            if command in (Command.YES, Command.RESUME, Command.GENTLER):
                self._accept_shorter(now_ms)
            elif command in _END:
                self._end_with(now_ms, Outcome.DOSE_LIMIT, self.messages.declined)
            elif command in (Command.REPEAT, Command.HELP):
                self._ask_shorter(now_ms)
        elif self.question is Question.LEG:
            leg = _leg_of(command)
            if leg is not None:
                self._choose_leg(leg, now_ms)
            elif command in (Command.STOP, Command.PAUSE):
                self._pause(now_ms)
            elif command is Command.END:
                self._end_with_summary(now_ms, Outcome.STOPPED)
            elif command in (Command.REPEAT, Command.HELP):
                self._ask(Question.LEG, self.messages.ask_leg, now_ms)

    def _on_pain(self, now_ms: int) -> None:
        if self.state is State.SAFETY:
            return  # the same report, said again: the safety message must not restart
        self.speaker.interrupt()  # first: silence before anything else (journal, safety clip)
        self.pain_reports += 1
        self.record.pain_reported(self.where, now_ms - self.started_ms)
        if self.state is State.RUNNING:
            self._resume_at = self._current_resume_index()
        # PAUSED and ASKING keep the resume point they already hold.
        self.speaker.play(self._safety_sound(), uninterruptible=True)
        if self.pain_reports >= 2:
            self._end_after_safety = Outcome.PAIN
            self._end_note = self.messages.second_pain
        elif self.state is State.ENDING:
            self._end_after_safety = self.outcome or Outcome.PAIN
            self._end_note = ""
        else:
            self._end_after_safety = None
            self._end_note = ""
        self._go(State.SAFETY, now_ms)

    def _after_speech(self, now_ms: int) -> None:
        """The speaker went quiet while in SAFETY or ENDING."""
        if self.state is State.ENDING:
            self._finish(now_ms, self.outcome or Outcome.STOPPED, self._end_note)
            return
        if self._end_after_safety is not None:
            outcome = self._end_after_safety
            note = self._end_note
            self._end_after_safety = None
            if note:
                self._end_with(now_ms, outcome, note)
            else:
                self._finish(now_ms, outcome, "")
            return
        self._ask(Question.AFTER_PAIN, self.messages.after_pain_offer, now_ms)

    def _on_timeout(self, now_ms: int) -> None:
        self._deadline_ms = None
        if self.state is State.PAUSED:
            self._end_with_summary(now_ms, Outcome.STOPPED, self.messages.pause_timeout)
        elif self.question is Question.LEG:
            self._leg_pending = False  # ask once; the wording stays generic
            self._resume(now_ms, self.messages.leg_default)
        elif self.question is Question.AFTER_PAIN or self.question is Question.SHORTER_SESSION:
            self._end_with(now_ms, Outcome.NO_ANSWER, self.messages.no_answer)

    # -- actions ---------------------------------------------------------------------------

    def _safety_sound(self) -> Sound:
        """The safety message, after a beat of silence so the stop itself is heard."""
        sound = self.sounds.speech(self.messages.safety)
        silence = np.zeros(
            sound.sample_rate_hz * self.settings.safety_pause_ms // 1000, dtype=np.float32
        )
        return Sound(np.concatenate([silence, sound.pcm]), sound.sample_rate_hz, sound.text)

    def _say(self, text: str) -> int:
        """Queue ``text``; returns its length in ms."""
        sound = self.sounds.speech(text)
        self.speaker.play(sound)
        return sound.duration_ms

    def _pause(self, now_ms: int) -> None:
        if self.state is State.RUNNING:
            self._resume_at = self._current_resume_index()
        # From a question, the resume point is the question's place: it is asked again.
        self.speaker.interrupt()
        spoken = self._say(self.messages.paused)
        self._deadline_ms = now_ms + spoken + self.settings.pause_timeout_ms
        self._paused_ms = now_ms
        self._go(State.PAUSED, now_ms)

    def _same_stop(self, now_ms: int) -> bool:
        return self._paused_ms is not None and now_ms - self._paused_ms < self.settings.same_stop_ms

    def _resume(self, now_ms: int, confirmation: str | None) -> None:
        """Carry on from the resume point, after ``confirmation``."""
        self.speaker.interrupt()
        spoken = self._say(confirmation) + self.settings.gap_ms if confirmation else 0
        self._deadline_ms = None
        if self.timeline is None:
            # Nothing started yet (pain during the shorter-session question): ask again.
            self._ask_shorter(now_ms + spoken)
            return
        index = self._resume_at if self._resume_at is not None else self.cursor
        self._resume_at = None
        self._jump(index, now_ms + spoken)
        self._go(State.RUNNING, now_ms)

    def _interjection(self, text: str, now_ms: int) -> None:
        """Say ``text`` now, then carry on from the resume point."""
        index = self._current_resume_index()
        self.speaker.interrupt()
        spoken = self._say(text)
        self._jump(index, now_ms + spoken + self.settings.gap_ms)

    def _repeat(self, now_ms: int) -> None:
        assert self.timeline is not None
        index = instruction_index(self.timeline.cues, self.cursor)
        if index is None:
            return
        self.speaker.interrupt()
        self._jump(index, now_ms + self.settings.gap_ms // 2)

    def _skip_exercise(self, now_ms: int) -> None:
        assert self.timeline is not None
        cues = self.timeline.cues
        current = self.where.exercise_index
        start = self._resume_at if self._resume_at is not None else self.cursor
        target = None
        for index in range(min(start, len(cues)), len(cues)):
            cue = cues[index]
            if (
                cue.kind is CueKind.CHAPTER
                and cue.mark is not None
                and (current is None or (cue.mark.exercise_index or 0) > current)
            ):
                target = index
                break
        self.speaker.interrupt()
        self._resume_at = None
        self._deadline_ms = None
        if target is not None:
            name = cues[target].text or "the next exercise"
            spoken = self._say(self.messages.skipping_to.format(name=name))
        else:
            target = next(
                (
                    index
                    for index, cue in enumerate(cues)
                    if cue.kind is CueKind.SAY and cue.role is Role.OUTRO
                ),
                len(cues),
            )
            if self.cursor > target and self.state is State.RUNNING:
                return  # already saying goodbye
            spoken = self._say(self.messages.last_exercise)
        self._jump(target, now_ms + spoken + self.settings.gap_ms)
        if self.state is not State.RUNNING:
            self._go(State.RUNNING, now_ms)

    def _change_pace(self, command: Command, now_ms: int) -> None:
        assert self.timeline is not None
        step = -self.settings.pace_step if command is Command.SLOWER else self.settings.pace_step
        pace = round(
            min(self.settings.max_pace, max(self.settings.min_pace, self.options.pace + step)), 2
        )
        index = self._resume_at if self._resume_at is not None else self._current_resume_index()
        self.speaker.interrupt()
        if pace == round(self.options.pace, 2):
            at_bound = self.messages.slowest if step < 0 else self.messages.fastest
            spoken = self._say(at_bound)
        else:
            old = self.timeline.cues
            self.options = replace(self.options, pace=pace)
            self.timeline = self._compiled()
            index = locate(old, index, self.timeline.cues)
            spoken = self._say(self.messages.slower if step < 0 else self.messages.faster)
        if self.state is State.PAUSED:
            self._resume_at = index
            self._deadline_ms = now_ms + spoken + self.settings.pause_timeout_ms
            return
        self._jump(index, now_ms + spoken + self.settings.gap_ms)

    def _ask(self, question: Question, text: str, now_ms: int, *, interrupt: bool = True) -> None:
        """Ask ``text``; the answer timer runs from when the question has been said."""
        if interrupt:
            self.speaker.interrupt()
        spoken = self._say(text)
        timeout = (
            self.settings.leg_timeout_ms
            if question is Question.LEG
            else self.settings.answer_timeout_ms
        )
        self._deadline_ms = now_ms + spoken + timeout
        self._go(State.ASKING, now_ms, question=question)

    def _choose_leg(self, leg: Leg, now_ms: int) -> None:
        assert self.timeline is not None
        self._leg_pending = False
        old = self.timeline.cues
        index = self._resume_at if self._resume_at is not None else self.cursor
        self.options = replace(self.options, affected_leg=leg)
        self.timeline = self._compiled()
        self._resume_at = locate(old, index, self.timeline.cues)
        self._resume(now_ms, self.messages.leg_chosen.format(leg=leg.value))

    def _end_with_summary(self, now_ms: int, outcome: Outcome, before: str = "") -> None:
        parts = [
            _glides(count) + ("" if leg is Leg.AFFECTED else f" with the {leg.value} leg")
            for leg, count in sorted(self.reps_done.items())
            if count
        ]
        reps = self.messages.summary_reps.format(parts=" and ".join(parts)) if parts else ""
        summary = self.messages.summary.format(reps=reps).replace("  ", " ")
        self._end_with(now_ms, outcome, f"{before} {summary}".strip())

    def _end_with(
        self, now_ms: int, outcome: Outcome, text: str, *, interrupt: bool = True
    ) -> None:
        if interrupt:
            self.speaker.interrupt()
        self._say(text)
        self.outcome = outcome
        self._end_note = text
        self._deadline_ms = None
        self._go(State.ENDING, now_ms)

    def _finish(self, now_ms: int, outcome: Outcome, note: str) -> None:
        self.outcome = outcome
        self._deadline_ms = None
        self._go(State.ENDED, now_ms)
        self.record.finished(outcome, dict(self.reps_done), note)

    # -- the dose ----------------------------------------------------------------------------

    def _dose_check(self, at_ms: int) -> None:
        """Check today's dose against the routine's limits, then start (or ask, or end).

        ``at_ms`` is when whatever was said before ends.
        """
        limits = self.routine.safety.limits
        if self.today.sessions >= limits.max_sessions_per_day:
            text = self.messages.sessions_limit.format(done=self.today.sessions)
            self._end_with(self._now_ms, Outcome.DOSE_LIMIT, text, interrupt=False)
            return
        cap = fitting_reps_cap(self.routine, self.options, self.today)
        if cap is None:
            self._begin_timeline(at_ms)
            return
        leg, done = max(self.today.reps_by_leg.items(), key=lambda item: item[1])
        leg_name = leg.value if leg is not Leg.AFFECTED else "painful"
        limit = limits.max_reps_per_leg_per_day
        if cap == 0:
            text = self.messages.reps_limit.format(done=done, leg=leg_name, limit=limit)
            self._end_with(self._now_ms, Outcome.DOSE_LIMIT, text, interrupt=False)
            return
        self._shorter_cap = cap
        self._shorter_text = self.messages.offer_shorter.format(
            done=done, leg=leg_name, limit=limit, reps=cap
        )
        if not self.settings.listening:
            # Nobody can answer: the shorter session is the safe default.
            self.routine = capped_routine(self.routine, cap)
            spoken_ms = self._say(
                self.messages.shorter_automatic.format(
                    done=done, leg=leg_name, limit=limit, reps=cap
                )
            )
            self._begin_timeline(at_ms + spoken_ms + self.settings.gap_ms)
            return
        self._ask(Question.SHORTER_SESSION, self._shorter_text, at_ms, interrupt=False)

    def _ask_shorter(self, now_ms: int) -> None:
        self._ask(Question.SHORTER_SESSION, self._shorter_text, now_ms)

    def _accept_shorter(self, now_ms: int) -> None:
        self.speaker.interrupt()
        self.routine = capped_routine(self.routine, self._shorter_cap)
        spoken = self._say(self.messages.shorter_chosen.format(reps=self._shorter_cap))
        self._begin_timeline(now_ms + spoken + self.settings.gap_ms)

    # -- the timeline ------------------------------------------------------------------------

    def _compiled(self) -> Timeline:
        timeline = self._compile(self.routine, self.options)
        if not self.settings.listening:
            timeline = without_roles(timeline, [Role.COMMANDS])
        return timeline

    def _begin_timeline(self, at_ms: int) -> None:
        self._leg_pending = (
            self.settings.listening
            and self.options.affected_leg is Leg.AFFECTED
            and any(exercise.sides is Sides.AFFECTED for exercise in self.routine.exercises)
        )
        self.timeline = self._compiled()
        self._jump(0, at_ms)
        self._deadline_ms = None
        self._go(State.RUNNING, self._now_ms)

    def _jump(self, index: int, at_ms: int) -> None:
        """Carry on the timeline from cue ``index``, which starts at ``at_ms``."""
        assert self.timeline is not None
        cues = self.timeline.cues
        self.cursor = max(0, min(index, len(cues)))
        planned = cues[self.cursor].at_ms if self.cursor < len(cues) else self.timeline.total_ms
        self.origin_ms = at_ms - planned
        self._hold_end_ms = None

    def _current_resume_index(self) -> int:
        if self.timeline is None:
            return 0
        return resume_index(self.timeline.cues, self.cursor)

    def _play_due_cues(self, now_ms: int) -> None:
        assert self.timeline is not None
        cues = self.timeline.cues
        while self.state is State.RUNNING and self.cursor < len(cues):
            cue = cues[self.cursor]
            if self.origin_ms + cue.at_ms > now_ms:
                return
            if self._leg_pending and self._asks_leg_before(cue):
                self._resume_at = self.cursor
                self._ask(Question.LEG, self.messages.ask_leg, now_ms)
                return
            self.cursor += 1
            self._start_cue(cue, now_ms)
        if self.state is State.RUNNING and self.cursor >= len(cues) and self.speaker.is_idle():
            self._finish(now_ms, Outcome.COMPLETED, "")

    def _asks_leg_before(self, cue: Cue) -> bool:
        """The leg question comes after the safety intro, before the commands or exercise."""
        return (cue.kind is CueKind.SAY and cue.role is Role.COMMANDS) or (
            cue.kind is CueKind.CHAPTER
        )

    def _start_cue(self, cue: Cue, now_ms: int) -> None:
        if cue.kind is CueKind.SAY and cue.text:
            self.speaker.play(self.sounds.speech(cue.text))
        elif cue.kind is CueKind.TONE and cue.earcon is not None:
            self.speaker.play(self.sounds.tone(cue.earcon))
        elif cue.kind is CueKind.CHAPTER and cue.mark is not None:
            self.where = Where(
                exercise_id=cue.mark.exercise_id,
                exercise_index=cue.mark.exercise_index,
                exercise_name=cue.text,
            )
        elif cue.kind is CueKind.MARK and cue.mark is not None:
            self._on_mark(cue, now_ms)

    def _on_mark(self, cue: Cue, now_ms: int) -> None:
        mark = cue.mark
        assert mark is not None
        if mark.exercise_index is not None:
            self.where = _advance(self.where, mark, self.routine)
        if mark.phase is Phase.HOLD_START:
            self._hold_end_ms = self._hold_end()
        elif mark.phase is Phase.HOLD_END:
            self._hold_end_ms = None
        elif mark.phase is Phase.REP_END and mark not in self._logged_reps:
            self._logged_reps.add(mark)
            leg = mark.leg or Leg.AFFECTED
            self.reps_done[leg] = self.reps_done.get(leg, 0) + 1
            self.record.rep_done(self.where, now_ms - self.started_ms)

    def _hold_end(self) -> int | None:
        assert self.timeline is not None
        for cue in self.timeline.cues[self.cursor :]:
            if cue.kind is CueKind.MARK and cue.mark and cue.mark.phase is Phase.HOLD_END:
                return self.origin_ms + cue.at_ms
        return None


def _advance(where: Where, mark: Mark, routine: Routine) -> Where:
    """``where`` after passing ``mark`` (an exercise, side, set or rep mark)."""
    assert mark.exercise_index is not None
    same_exercise = where.exercise_index == mark.exercise_index
    new_exercise = mark.phase is Phase.EXERCISE_START or not same_exercise
    new_side = new_exercise or mark.phase is Phase.SIDE_START
    new_set = new_side or mark.phase is Phase.SET_START
    return Where(
        exercise_id=mark.exercise_id,
        exercise_index=mark.exercise_index,
        exercise_name=routine.exercises[mark.exercise_index].name,
        leg=mark.leg if mark.leg is not None else (None if new_exercise else where.leg),
        set_number=(
            mark.set_number
            if mark.set_number is not None
            else (None if new_side else where.set_number)
        ),
        rep_number=(
            mark.rep_number
            if mark.rep_number is not None
            else (None if new_set else where.rep_number)
        ),
    )


def _glides(count: int) -> str:
    return f"{count} glide" if count == 1 else f"{count} glides"


def _leg_of(command: Command) -> Leg | None:
    """The leg an answer to 'which leg?' names: yes is left, no is right.

    Also LEFT / RIGHT, should the vocabulary gain them.
    """
    name = command.name
    if command is Command.YES or name == "LEFT":
        return Leg.LEFT
    if command is Command.NO or name == "RIGHT":
        return Leg.RIGHT
    return None
