"""The session state machine on a fake clock with fake devices: no audio, no sleeps."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from session_support import (
    Rig,
    exercise_data,
    fake_compile,
    make_rig,
    make_routine,
)

from coach.listen.commands import Command
from coach.session import (
    DoseToday,
    Messages,
    Outcome,
    Question,
    SessionSettings,
    State,
    capped_routine,
    fitting_reps_cap,
    instruction_index,
    locate,
    reps_by_leg,
    resume_index,
    without_roles,
)
from coach.timeline import Cue, CueKind, Leg, Phase, Role, Timeline, TimelineOptions

M = Messages()


def plan(options: TimelineOptions | None = None) -> Timeline:
    """The timeline the default rig plays (offsets equal session time when nothing happens)."""
    return fake_compile(make_routine(), options or TimelineOptions())


def first(timeline: Timeline, predicate: Callable[[Cue], bool], *, nth: int = 0) -> Cue:
    found = [cue for cue in timeline.cues if predicate(cue)]
    return found[nth]


def mark(
    phase: Phase, *, exercise: int = 0, rep: int | None = None, nth: int = 0
) -> Callable[[Cue], bool]:
    def match(cue: Cue) -> bool:
        return (
            cue.kind is CueKind.MARK
            and cue.mark is not None
            and cue.mark.phase is phase
            and cue.mark.exercise_index == exercise
            and (rep is None or cue.mark.rep_number == rep)
        )

    return match


def say(text_part: str) -> Callable[[Cue], bool]:
    return lambda cue: cue.kind is CueKind.SAY and text_part in (cue.text or "")


def during_hold(rep: int = 1, exercise: int = 0) -> int:
    """Session ms 1 s into the hold of ``rep``."""
    return first(plan(), mark(Phase.HOLD_START, exercise=exercise, rep=rep)).at_ms + 1000


def during_speech(text_part: str) -> int:
    cue = first(plan(), say(text_part))
    return cue.at_ms + cue.duration_ms // 2


def total_reps(rig: Rig) -> dict[Leg, int]:
    counts: dict[Leg, int] = {}
    for where, _ in rig.record.reps:
        assert where.leg is not None
        counts[where.leg] = counts.get(where.leg, 0) + 1
    return counts


# -- a whole session ------------------------------------------------------------------------


def test_a_session_without_commands_plays_every_cue_on_time_and_journals_every_rep() -> None:
    rig = make_rig().drive()
    timeline = rig.timeline()
    assert rig.session.outcome is Outcome.COMPLETED
    assert rig.record.finished_calls == 1
    sounds = [cue for cue in timeline.cues if cue.kind in (CueKind.SAY, CueKind.TONE)]
    assert len(rig.speaker.played) == len(sounds)
    for cue, played in zip(sounds, rig.speaker.played, strict=True):
        # No drift: each sound starts exactly at its planned offset.
        assert played.start_ms - rig.t0 == cue.at_ms
        assert played.text == cue.text
    # lying glide: 2 reps left; seated glide: 2 reps each side.
    assert total_reps(rig) == {Leg.LEFT: 4, Leg.RIGHT: 2}
    assert rig.record.reps_by_leg == {Leg.LEFT: 4, Leg.RIGHT: 2}
    assert [where.rep_number for where, _ in rig.record.reps] == [1, 2, 1, 2, 1, 2]
    assert [state for _, state in rig.session.trace] == [
        State.STARTING,
        State.RUNNING,
        State.ENDED,
    ]


def test_rep_journal_entries_carry_exercise_side_and_time() -> None:
    rig = make_rig().drive()
    where, at_ms = rig.record.reps[0]
    assert (where.exercise_id, where.leg, where.set_number, where.rep_number) == (
        "lying",
        Leg.LEFT,
        1,
        1,
    )
    assert at_ms == first(plan(), mark(Phase.REP_END, rep=1)).at_ms


def test_status_counts_down_the_hold() -> None:
    rig = make_rig()
    rig.drive(until_ms=during_hold())
    status = rig.session.status(rig.clock.now_ms)
    assert status.state is State.RUNNING
    assert status.where.exercise_name == "the lying glide"
    assert status.where.leg is Leg.LEFT
    assert status.where.rep_number == 1
    assert status.reps_per_side == 2
    assert status.hold_left_ms == 2000


# -- PAIN -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        pytest.param(lambda: during_speech("Lie on your back"), id="during-setup-speech"),
        pytest.param(during_hold, id="during-hold"),
        pytest.param(lambda: first(plan(), say("That's one")).at_ms + 1, id="during-count-speech"),
        pytest.param(
            lambda: first(plan(), say("Rest, then we switch sides")).end_ms + 1000,
            id="during-rest",
        ),
        pytest.param(lambda: during_speech("Welcome"), id="during-intro"),
    ],
)
def test_pain_silences_at_once_says_the_safety_message_and_offers_choices(
    when: Callable[[], int],
) -> None:
    at = when()
    rig = make_rig().drive([(at, Command.PAIN)], until_ms=at + 60_000)
    now = rig.t0 + at
    speaker = rig.speaker
    # Whatever was sounding stops at the very moment PAIN is handled.
    before = [p for p in speaker.played if p.start_ms < now]
    assert all(p.end_ms <= now for p in before)
    safety = speaker.first(M.safety)
    assert safety.start_ms == now
    assert safety.uninterruptible
    assert not safety.interrupted
    offer = speaker.first(M.after_pain_offer)
    assert offer.start_ms == safety.end_ms
    assert len(rig.record.pains) == 1
    # Nobody answered: the session ended safely 30 s after the offer was said.
    assert rig.session.outcome is Outcome.NO_ANSWER
    goodbye = speaker.first(M.no_answer)
    assert goodbye.start_ms == offer.end_ms + 30_000


@pytest.mark.parametrize("command", [Command.PAIN, Command.STOP])
def test_the_coach_falls_silent_before_anything_is_journaled(command: Command) -> None:
    """A journal entry is a disk commit (slow on an SD card): it must not delay silence."""
    rig = make_rig()
    journaled_after: list[int] = []  # how many interrupts had happened at each entry
    record = rig.record

    def remember(*_: object) -> None:
        journaled_after.append(len(rig.speaker.interrupts))

    record.command_heard = remember  # type: ignore[method-assign]
    record.pain_reported = remember  # type: ignore[method-assign]
    at = during_hold(rep=2)
    rig.drive([(at, command)], until_ms=at + 100)
    assert journaled_after and all(count >= 1 for count in journaled_after)


def test_pain_report_names_exercise_side_rep_and_time() -> None:
    at = during_hold(rep=2)
    rig = make_rig().drive([(at, Command.PAIN)], until_ms=at + 100)
    where, at_ms = rig.record.pains[0]
    assert (where.exercise_id, where.exercise_name, where.leg, where.rep_number) == (
        "lying",
        "the lying glide",
        Leg.LEFT,
        2,
    )
    assert at_ms == at
    assert rig.session.state is State.SAFETY


def test_pain_during_the_safety_message_does_not_restart_it() -> None:
    at = during_hold()
    script = [(at, Command.PAIN), (at + 500, Command.PAIN), (at + 1500, Command.PAIN)]
    rig = make_rig().drive(script, until_ms=at + 20_000)
    assert rig.speaker.count(M.safety) == 1
    assert not rig.speaker.first(M.safety).interrupted
    assert len(rig.record.pains) == 1
    assert rig.session.state is State.ASKING
    assert rig.session.question is Question.AFTER_PAIN
    # All three were heard and journaled.
    assert [c for c, _, _ in rig.record.commands] == [Command.PAIN] * 3


@pytest.mark.parametrize(
    "command", [Command.NEXT, Command.REPEAT, Command.HELP, Command.SLOWER, Command.RESUME]
)
def test_other_commands_cannot_cut_the_safety_message(command: Command) -> None:
    at = during_hold()
    rig = make_rig().drive([(at, Command.PAIN), (at + 300, command)], until_ms=at + 15_000)
    safety = rig.speaker.first(M.safety)
    assert not safety.interrupted
    assert rig.speaker.audible_at(rig.t0 + at + 301) is safety
    assert rig.session.question is Question.AFTER_PAIN


def test_stop_during_the_safety_message_ends_after_it() -> None:
    at = during_hold()
    rig = make_rig().drive([(at, Command.PAIN), (at + 300, Command.STOP)])
    safety = rig.speaker.first(M.safety)
    assert not safety.interrupted
    assert M.after_pain_offer not in rig.said()
    assert rig.speaker.first(M.end_after_pain).start_ms == safety.end_ms
    assert rig.session.outcome is Outcome.PAIN


def _answer_after_offer(rig_at: int, answer: Command) -> Rig:
    rig = make_rig()
    rig.drive([(rig_at, Command.PAIN)], until_ms=rig_at + 12_000)
    assert rig.session.question is Question.AFTER_PAIN
    answer_at = rig.clock.now_ms - rig.t0 + 1000
    rig.drive([(answer_at, answer)])
    return rig


@pytest.mark.parametrize("answer", [Command.GENTLER, Command.YES, Command.RESUME])
def test_carrying_on_gently_redoes_the_interrupted_rep_with_a_reminder(answer: Command) -> None:
    rig = _answer_after_offer(during_hold(rep=2), answer)
    assert M.gentler in rig.said()
    assert rig.session.outcome is Outcome.COMPLETED
    # The interrupted rep 2 is done again, never more than the remaining dose.
    assert total_reps(rig) == {Leg.LEFT: 4, Leg.RIGHT: 2}
    said = rig.said()
    after = said[said.index(M.gentler) + 1 :]
    assert after[0] == "Straighten the knee, toes toward you."


@pytest.mark.parametrize("answer", [Command.SKIP, Command.NEXT])
def test_skipping_after_pain_goes_to_the_next_exercise(answer: Command) -> None:
    rig = _answer_after_offer(during_hold(rep=1), answer)
    said = rig.said()
    assert "Skipping to the seated glide." in said
    assert rig.session.outcome is Outcome.COMPLETED
    # No more lying-glide reps after the pain.
    assert [w.exercise_id for w, _ in rig.record.reps] == ["seated"] * 4


@pytest.mark.parametrize("answer", [Command.END, Command.STOP, Command.NO])
def test_ending_after_pain(answer: Command) -> None:
    rig = _answer_after_offer(during_hold(), answer)
    assert rig.said()[-1] == M.end_after_pain
    assert rig.session.outcome is Outcome.PAIN
    assert rig.record.outcome is Outcome.PAIN


def test_a_second_pain_ends_the_session_with_clinician_advice() -> None:
    rig = _answer_after_offer(during_hold(rep=1), Command.GENTLER)
    # Not finished yet in this rig: _answer_after_offer drove to the end. Use a fresh one.
    rig = make_rig()
    at = during_hold(rep=1)
    rig.drive([(at, Command.PAIN)], until_ms=at + 12_000)
    answer_at = rig.clock.now_ms - rig.t0 + 500
    rig.drive([(answer_at, Command.GENTLER), (answer_at + 15_000, Command.PAIN)])
    assert rig.speaker.count(M.safety) == 2
    assert rig.said()[-1] == M.second_pain
    assert rig.session.outcome is Outcome.PAIN
    assert len(rig.record.pains) == 2
    assert M.after_pain_offer not in rig.said()[rig.said().index(M.gentler) :]


def test_pain_while_the_offer_is_being_said_is_a_second_pain() -> None:
    at = during_hold()
    rig = make_rig()
    rig.drive([(at, Command.PAIN)], until_ms=at + 10_000)
    offer = rig.speaker.first(M.after_pain_offer)
    rig.drive([(offer.start_ms - rig.t0 + 300, Command.PAIN)])
    assert offer.interrupted
    assert rig.said()[-2:] == [M.safety, M.second_pain]
    assert rig.session.outcome is Outcome.PAIN


# -- STOP, PAUSE, RESUME ------------------------------------------------------------------------


def test_stop_pauses_at_once_and_resume_redoes_the_current_rep() -> None:
    at = during_hold(rep=1)
    rig = make_rig()
    rig.drive([(at, Command.STOP)], until_ms=at + 5_000)
    now = rig.t0 + at
    assert rig.session.state is State.PAUSED
    assert all(p.end_ms <= now for p in rig.speaker.played if p.text != M.paused)
    assert rig.speaker.first(M.paused).start_ms == now
    rig.drive([(at + 20_000, Command.RESUME)])
    said = rig.said()
    assert said[said.index(M.resumed) + 1] == "Straighten the knee, toes toward you."
    assert rig.session.outcome is Outcome.COMPLETED
    assert total_reps(rig) == {Leg.LEFT: 4, Leg.RIGHT: 2}


def test_cues_after_a_pause_keep_their_spacing() -> None:
    at = during_speech("Lie on your back")
    rig = make_rig().drive([(at, Command.PAUSE), (at + 10_000, Command.RESUME)])
    timeline = rig.timeline()
    resumed = rig.speaker.first(M.resumed)
    restart = rig.speaker.played[rig.speaker.played.index(resumed) + 1]
    origin = restart.start_ms - first(timeline, say("Lie on your back")).at_ms
    sounds = [c for c in timeline.cues if c.kind in (CueKind.SAY, CueKind.TONE)]
    later = rig.speaker.played[rig.speaker.played.index(restart) :]
    tail = sounds[len(sounds) - len(later) :]
    for cue, played in zip(tail, later, strict=True):
        assert played.start_ms == origin + cue.at_ms


def test_stop_twice_ends_with_a_spoken_summary() -> None:
    at = during_hold(rep=2, exercise=1)
    rig = make_rig().drive([(at, Command.STOP), (at + 3000, Command.STOP)])
    assert rig.session.outcome is Outcome.STOPPED
    last = rig.said()[-1]
    assert last.startswith("We'll stop here.")
    assert "Today you did 3 glides with the left leg." in last
    assert rig.record.outcome is Outcome.STOPPED


def test_stop_said_twice_at_once_only_pauses() -> None:
    # "Stop, stop!" (or one word the listener heard twice): the same request, not "end".
    at = during_hold(rep=2, exercise=1)
    rig = make_rig()
    rig.drive([(at, Command.STOP), (at + 900, Command.STOP)], until_ms=at + 5_000)
    assert rig.session.state is State.PAUSED
    assert [c for c, *_ in rig.record.commands] == [Command.STOP, Command.STOP]
    assert not any(text.startswith("We'll stop here.") for text in rig.said())
    # A later STOP (the answer to "Paused. Say resume to carry on, or stop to end.") ends it.
    rig.drive([(at + 1_600, Command.STOP)])
    assert rig.session.outcome is Outcome.STOPPED
    assert rig.said()[-1].startswith("We'll stop here.")


def test_two_minutes_paused_ends_the_session() -> None:
    at = during_hold()
    rig = make_rig().drive([(at, Command.PAUSE)])
    paused = rig.speaker.first(M.paused)
    last = rig.speaker.played[-1]
    assert last.start_ms == paused.end_ms + 120_000
    assert last.text is not None and last.text.startswith(M.pause_timeout)
    assert rig.session.outcome is Outcome.STOPPED


def test_stop_during_the_summary_silences_it() -> None:
    at = during_hold()
    rig = make_rig()
    rig.drive([(at, Command.STOP), (at + 2000, Command.STOP)], until_ms=at + 2500)
    assert rig.session.state is State.ENDING
    rig.drive([(at + 2600, Command.STOP)])
    assert rig.speaker.played[-1].interrupted
    assert rig.session.ended
    assert rig.clock.now_ms == rig.t0 + at + 2600


# -- NEXT, REPEAT, SLOWER, FASTER, HELP --------------------------------------------------------


def test_next_confirms_and_moves_to_the_next_exercise() -> None:
    at = during_hold()
    rig = make_rig().drive([(at, Command.NEXT)])
    now = rig.t0 + at
    skip = rig.speaker.first("Skipping to the seated glide.")
    assert skip.start_ms == now
    said = rig.said()
    assert said[said.index(skip.text or "") + 1] == "Exercise two of two: the seated glide."
    assert [w.exercise_id for w, _ in rig.record.reps] == ["seated"] * 4
    assert rig.session.outcome is Outcome.COMPLETED


def test_next_at_the_last_exercise_finishes() -> None:
    at = during_hold(exercise=1)
    rig = make_rig().drive([(at, Command.NEXT)])
    said = rig.said()
    assert M.last_exercise in said
    assert said[said.index(M.last_exercise) + 1].startswith("That's the end of the session.")
    assert rig.session.outcome is Outcome.COMPLETED


def test_next_during_the_intro_starts_the_first_exercise() -> None:
    rig = make_rig().drive([(during_speech("Welcome"), Command.NEXT)])
    said = rig.said()
    assert said[1] == "Skipping to the lying glide."
    assert said[2] == "Exercise one of two: the lying glide."


def test_repeat_says_the_current_instruction_again() -> None:
    at = during_hold()
    rig = make_rig().drive([(at, Command.REPEAT)])
    said = rig.said()
    assert said.count("Straighten the knee, toes toward you.") == 2 + 1
    assert rig.session.outcome is Outcome.COMPLETED
    assert total_reps(rig) == {Leg.LEFT: 4, Leg.RIGHT: 2}  # never journaled twice


def test_repeat_during_setup_repeats_the_setup_step() -> None:
    at = first(plan(), say("Lie on your back")).end_ms + 500
    rig = make_rig().drive([(at, Command.REPEAT)])
    assert rig.said().count("Lie on your back with both knees bent.") == 2


def test_slower_confirms_and_recompiles_the_rest_at_the_slower_pace() -> None:
    at = during_hold()
    rig = make_rig().drive([(at, Command.SLOWER)])
    assert rig.session.options.pace == pytest.approx(0.8)
    assert M.slower in rig.said()
    slow = rig.timeline()
    assert slow.options.pace == pytest.approx(0.8)
    # The rep is done again at the new pace: the pause after the move is 2 s / 0.8.
    said = rig.said()
    assert said[said.index(M.slower) + 1] == "Straighten the knee, toes toward you."
    played = rig.speaker.played
    again = played.index(rig.speaker.first(M.slower)) + 1
    hold_tone = played[again + 1]
    assert hold_tone.text is None
    assert hold_tone.start_ms - played[again].end_ms == round(2000 / 0.8)
    assert total_reps(rig) == {Leg.LEFT: 4, Leg.RIGHT: 2}
    assert rig.session.outcome is Outcome.COMPLETED


def test_pace_stays_within_bounds() -> None:
    rig = make_rig(options=TimelineOptions(pace=0.6))
    at = during_hold()
    rig.drive([(at, Command.SLOWER)], until_ms=at + 3000)
    assert M.slowest in rig.said()
    assert rig.session.options.pace == pytest.approx(0.6)
    faster = make_rig(options=TimelineOptions(pace=1.2))
    faster.drive([(at, Command.FASTER), (at + 8000, Command.FASTER)], until_ms=at + 9000)
    assert faster.session.options.pace == pytest.approx(1.4)
    assert M.fastest in faster.said()


def test_help_says_what_you_can_say_then_carries_on() -> None:
    at = during_speech("Lie on your back")
    rig = make_rig().drive([(at, Command.HELP)])
    said = rig.said()
    assert said[said.index(M.help) + 1] == "Lie on your back with both knees bent."
    assert rig.session.outcome is Outcome.COMPLETED


def test_commands_that_mean_nothing_now_are_ignored_silently() -> None:
    at = during_hold()
    quiet = make_rig().drive()
    rig = make_rig().drive(
        [(at, Command.RESUME), (at + 100, Command.YES), (at + 200, Command.GENTLER)]
    )
    assert rig.said() == quiet.said()
    assert len(rig.record.commands) == 3  # heard and journaled all the same


# -- two at once --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("together", "expected"),
    [
        ((Command.STOP, Command.PAIN), State.SAFETY),
        ((Command.NEXT, Command.PAIN), State.SAFETY),
        ((Command.NEXT, Command.STOP), State.PAUSED),
        ((Command.HELP, Command.STOP, Command.REPEAT), State.PAUSED),
    ],
)
def test_of_commands_heard_together_the_highest_priority_acts(
    together: tuple[Command, ...], expected: State
) -> None:
    at = during_hold()
    rig = make_rig().drive([(at, together)], until_ms=at + 10)
    assert rig.session.state is expected
    assert len(rig.record.commands) == len(together)


# -- every command in every state --------------------------------------------------------------

Build = Callable[[], tuple[Rig, int]]
"""Makes a session in some situation; returns it and the session ms it got to."""
SITUATIONS: dict[str, Build] = {}


def situation(name: str) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        SITUATIONS[name] = build
        return build

    return register


def _at(rig: Rig, at: int, script: list[tuple[int, Command]] | None = None) -> tuple[Rig, int]:
    rig.drive(script or [], until_ms=at)
    return rig, at


@situation("running-speech")
def _running_speech() -> tuple[Rig, int]:
    return _at(make_rig(), during_speech("Lie on your back"))


@situation("running-hold")
def _running_hold() -> tuple[Rig, int]:
    return _at(make_rig(), during_hold())


@situation("running-rest")
def _running_rest() -> tuple[Rig, int]:
    return _at(make_rig(), first(plan(), say("Rest, then we switch sides")).end_ms + 1000)


@situation("paused")
def _paused() -> tuple[Rig, int]:
    at = during_hold()
    return _at(make_rig(), at + 5000, [(at, Command.STOP)])


@situation("safety")
def _safety() -> tuple[Rig, int]:
    at = during_hold()
    return _at(make_rig(), at + 1000, [(at, Command.PAIN)])


@situation("asking-after-pain")
def _asking_after_pain() -> tuple[Rig, int]:
    at = during_hold()
    return _at(make_rig(), at + 20_000, [(at, Command.PAIN)])


@situation("asking-leg")
def _asking_leg() -> tuple[Rig, int]:
    routine = make_routine(exercise_data(sides="affected"))
    commands = first(fake_compile(routine, TimelineOptions()), lambda c: c.role is Role.COMMANDS)
    return _at(make_rig(routine), commands.at_ms + 2000)


@situation("asking-shorter")
def _asking_shorter() -> tuple[Rig, int]:
    rig = make_rig(
        make_routine(max_reps=10), today=DoseToday(reps_by_leg={Leg.LEFT: 8}, sessions=1)
    )
    return _at(rig, 3000)


@situation("ending")
def _ending() -> tuple[Rig, int]:
    at = during_hold()
    return _at(make_rig(), at + 2500, [(at, Command.STOP), (at + 2000, Command.STOP)])


def test_the_situations_are_what_they_say() -> None:
    expected = {
        "running-speech": State.RUNNING,
        "running-hold": State.RUNNING,
        "running-rest": State.RUNNING,
        "paused": State.PAUSED,
        "safety": State.SAFETY,
        "asking-after-pain": State.ASKING,
        "asking-leg": State.ASKING,
        "asking-shorter": State.ASKING,
        "ending": State.ENDING,
    }
    for name, build in SITUATIONS.items():
        rig, _ = build()
        assert rig.session.state is expected[name], name


@pytest.mark.parametrize("command", list(Command), ids=lambda c: c.name)
@pytest.mark.parametrize("name", list(SITUATIONS))
def test_every_command_in_every_state(name: str, command: Command) -> None:
    rig, at = SITUATIONS[name]()
    before_state = rig.session.state
    pains_before = len(rig.record.pains)
    safety_before = rig.speaker.count(M.safety)
    rig.drive([(at + 1, command)], until_ms=at + 2)
    session = rig.session
    assert rig.record.commands[-1][0] is command  # every command is journaled
    if command is Command.PAIN:
        if before_state is State.SAFETY:
            assert session.state is State.SAFETY
            assert rig.speaker.count(M.safety) == safety_before  # never restarted
            assert len(rig.record.pains) == pains_before
        else:
            assert session.state is State.SAFETY
            assert rig.speaker.count(M.safety) == safety_before + 1
            assert len(rig.record.pains) == pains_before + 1
    if command is Command.STOP and before_state is State.RUNNING:
        assert session.state is State.PAUSED
    # The safety message is never cut short, whatever is said.
    assert not any(p.interrupted for p in rig.speaker.played if p.text == M.safety)
    # Whatever happens, the session always comes to an end on its own, journaled once.
    rig.drive()
    assert session.ended
    assert rig.record.finished_calls == 1
    assert session.outcome is not None


# -- before the first exercise ----------------------------------------------------------------


def test_the_leg_question_comes_after_the_safety_intro_and_the_answer_names_the_leg() -> None:
    rig, _ = SITUATIONS["asking-leg"]()
    assert rig.session.question is Question.LEG
    said = rig.said()
    assert said.index(M.ask_leg) > said.index("Get urgent care for numbness around the groin.")
    assert not any("You can talk to me" in text for text in said)
    asked = rig.speaker.first(M.ask_leg)
    rig.drive([(asked.end_ms - rig.t0 + 1000, Command.NO)])  # "no": not the left leg
    said = rig.said()
    assert "The right leg, then." in said
    assert "This one is for the right leg." in said
    assert said[said.index("The right leg, then.") + 1].startswith("You can talk to me")
    assert {w.leg for w, _ in rig.record.reps} == {Leg.RIGHT}


def test_no_answer_to_the_leg_question_keeps_the_generic_wording() -> None:
    routine = make_routine(exercise_data(sides="affected"))
    rig = make_rig(routine).drive()
    said = rig.said()
    assert M.leg_default in said
    assert "This one is for your painful leg." in said
    assert rig.session.outcome is Outcome.COMPLETED


def test_without_listening_nothing_is_asked_and_commands_are_not_taught() -> None:
    routine = make_routine(exercise_data(sides="affected"))
    notice = "Voice control is off today."
    rig = make_rig(routine, settings=SessionSettings(listening=False, notice=notice)).drive()
    said = rig.said()
    assert said[0] == notice
    assert M.ask_leg not in said
    assert not any("You can talk to me" in text for text in said)
    assert "This one is for your painful leg." in said
    assert rig.session.outcome is Outcome.COMPLETED


def test_a_known_affected_leg_is_not_asked() -> None:
    routine = make_routine(exercise_data(sides="affected"))
    rig = make_rig(routine, options=TimelineOptions(affected_leg=Leg.LEFT)).drive()
    assert M.ask_leg not in rig.said()
    assert {w.leg for w, _ in rig.record.reps} == {Leg.LEFT}


# -- dose limits ------------------------------------------------------------------------------


def test_a_session_past_the_daily_limit_offers_a_shorter_one() -> None:
    routine = make_routine(max_reps=10)  # plans 4 left, 2 right
    today = DoseToday(reps_by_leg={Leg.LEFT: 8}, sessions=1)
    rig = make_rig(routine, today=today)
    rig.drive(until_ms=2000)
    assert rig.session.question is Question.SHORTER_SESSION
    assert "8 glides with the left leg" in rig.said()[0]
    assert "1 repetitions a side" in rig.said()[0]
    rig.drive([(rig.speaker.played[0].end_ms - rig.t0 + 500, Command.YES)])
    assert rig.session.outcome is Outcome.COMPLETED
    assert total_reps(rig) == {Leg.LEFT: 2, Leg.RIGHT: 1}


def test_declining_the_shorter_session_ends() -> None:
    routine = make_routine(max_reps=10)
    rig = make_rig(routine, today=DoseToday(reps_by_leg={Leg.LEFT: 8}))
    rig.drive([(20_000, Command.NO)])
    assert rig.said()[-1] == M.declined
    assert rig.session.outcome is Outcome.DOSE_LIMIT
    assert rig.record.reps == []


def test_without_listening_the_shorter_session_is_taken() -> None:
    routine = make_routine(max_reps=10)
    rig = make_rig(
        routine,
        settings=SessionSettings(listening=False),
        today=DoseToday(reps_by_leg={Leg.LEFT: 8}),
    ).drive()
    assert "so today's session is shorter, with 1 repetitions a side" in rig.said()[0]
    assert total_reps(rig) == {Leg.LEFT: 2, Leg.RIGHT: 1}


def test_no_rep_left_today_ends_before_starting() -> None:
    routine = make_routine(max_reps=10)
    rig = make_rig(routine, today=DoseToday(reps_by_leg={Leg.LEFT: 10})).drive()
    assert len(rig.said()) == 1
    assert "daily limit of 10" in rig.said()[0]
    assert rig.session.outcome is Outcome.DOSE_LIMIT


def test_too_many_sessions_today_ends_before_starting() -> None:
    rig = make_rig(make_routine(max_sessions=2), today=DoseToday(sessions=2)).drive()
    assert rig.said() == [M.sessions_limit.format(done=2)]
    assert rig.session.outcome is Outcome.DOSE_LIMIT


def test_reps_cap_fits_each_leg() -> None:
    routine = make_routine(max_reps=10)
    options = TimelineOptions()
    assert reps_by_leg(routine, options) == {Leg.LEFT: 4, Leg.RIGHT: 2}
    assert fitting_reps_cap(routine, options, DoseToday()) is None
    assert fitting_reps_cap(routine, options, DoseToday(reps_by_leg={Leg.LEFT: 7})) == 1
    assert fitting_reps_cap(routine, options, DoseToday(reps_by_leg={Leg.RIGHT: 9})) == 1
    assert fitting_reps_cap(routine, options, DoseToday(reps_by_leg={Leg.LEFT: 9})) == 0
    capped = capped_routine(routine, 1)
    assert [e.reps_per_side for e in capped.exercises] == [1, 1]


def test_an_unchosen_affected_leg_counts_against_both_legs() -> None:
    routine = make_routine(exercise_data(sides="affected", reps_per_side=3))
    assert reps_by_leg(routine, TimelineOptions()) == {Leg.LEFT: 3, Leg.RIGHT: 3}
    chosen = TimelineOptions(affected_leg=Leg.RIGHT)
    assert reps_by_leg(routine, chosen) == {Leg.LEFT: 0, Leg.RIGHT: 3}


# -- abort --------------------------------------------------------------------------------------


def test_abort_ends_at_once_and_journals_the_outcome() -> None:
    at = during_hold()
    rig = make_rig()
    rig.drive(until_ms=at)
    rig.session.abort(rig.clock.now_ms, Outcome.INTERRUPTED, "Ctrl-C")
    assert rig.session.ended
    assert rig.record.outcome is Outcome.INTERRUPTED
    assert rig.record.reps_by_leg == {Leg.LEFT: 0} or rig.record.reps_by_leg == {}
    assert rig.speaker.interrupts[-1] == rig.clock.now_ms
    rig.session.abort(rig.clock.now_ms + 5, Outcome.INTERRUPTED)
    assert rig.record.finished_calls == 1


# -- timeline helpers -------------------------------------------------------------------------


def test_resume_points() -> None:
    cues = plan().cues
    hold = cues.index(first(plan(), mark(Phase.HOLD_START, rep=1)))
    rep_start = cues.index(first(plan(), mark(Phase.REP_START, rep=1)))
    assert resume_index(cues, hold + 2) == rep_start
    setup = cues.index(first(plan(), say("Lie on your back")))
    assert resume_index(cues, setup + 1) == setup
    count = cues.index(first(plan(), say("That's one")))
    assert resume_index(cues, count + 1) == count + 1  # between reps: carry on
    assert resume_index(cues, 0) == 0


def test_repeat_point_is_the_last_setup_or_move_sentence() -> None:
    cues = plan().cues
    hold = cues.index(first(plan(), mark(Phase.HOLD_START, rep=1)))
    move = cues.index(first(plan(), say("Straighten the knee")))
    assert instruction_index(cues, hold + 1) == move
    welcome = cues.index(first(plan(), say("Welcome")))
    assert instruction_index(cues, welcome + 1) == welcome


def test_locate_maps_a_cue_across_paces() -> None:
    slow = plan(TimelineOptions(pace=0.6)).cues
    cues = plan().cues
    for index in range(len(cues)):
        mapped = locate(cues, index, slow)
        assert slow[mapped].kind is cues[index].kind
        assert slow[mapped].text == cues[index].text


def test_without_roles_closes_the_gap() -> None:
    timeline = plan()
    lean = without_roles(timeline, [Role.COMMANDS])
    dropped = [c for c in timeline.cues if c.role is Role.COMMANDS]
    assert len(dropped) == 1
    assert lean.total_ms == timeline.total_ms - dropped[0].duration_ms
    assert len(lean.cues) == len(timeline.cues) - 1
    assert lean.cues[-1].at_ms == timeline.cues[-1].at_ms - dropped[0].duration_ms
