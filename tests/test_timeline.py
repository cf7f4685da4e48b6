"""The timeline compiler: cue order, exact arithmetic, pace, sides, wording and marks."""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import pairwise

import pytest
from timeline_support import (
    exercise_data,
    make_routine,
    mark_cues,
    marks,
    one_second,
    said,
    timed,
)

from coach import phrases
from coach.earcons import EARCON_MS
from coach.timeline import (
    BREATH_MS,
    COMMA_PAUSE_MS,
    ENCOURAGE_EVERY_REPS,
    EXERCISE_REST_MS,
    GET_READY_MS,
    INTRO_GAP_MS,
    SENTENCE_PAUSE_MS,
    SETUP_STEP_MS,
    Cue,
    CueKind,
    Earcon,
    Leg,
    Phase,
    Role,
    Timeline,
    TimelineOptions,
    compile_timeline,
    estimate_speech_ms,
)

SAY_MS = 1000  # every sentence takes one second with the one_second timer

# Full intro: welcome, description, breath, disclaimer, red flags, stop rule, breath,
# commands, gap before the first exercise.
INTRO_MS = 6 * SAY_MS + 2 * BREATH_MS + INTRO_GAP_MS
# Exercise opening: tone, title, one setup step + its pause, feel, stop_if, breath.
OPENING_MS = EARCON_MS[Earcon.EXERCISE_START] + 4 * SAY_MS + SETUP_STEP_MS + BREATH_MS
# Side announcement + time to get ready.
SIDE_OPEN_MS = SAY_MS + GET_READY_MS
# One rep of the default exercise at pace 1: "Straighten..." + 2 s tempo, hold tone, 3 s
# hold, release tone, "Bend and relax." + 2 s tempo, then "That's n."
REP_MS = (
    SAY_MS
    + 2000
    + EARCON_MS[Earcon.HOLD_START]
    + 3000
    + EARCON_MS[Earcon.HOLD_END]
    + SAY_MS
    + 2000
    + SAY_MS
)
OUTRO_MS = SAY_MS + EARCON_MS[Earcon.SESSION_END]


def compile_1s(routine_kwargs: dict[str, object] | None = None, **options: object) -> Timeline:
    """Compile one exercise (``exercise_data(**routine_kwargs)``) with one-second speech."""
    routine = make_routine(exercise_data(**(routine_kwargs or {})))
    return compile_timeline(routine, TimelineOptions(**options), one_second)  # type: ignore[arg-type]


def assert_contiguous(timeline: Timeline) -> None:
    cursor = 0
    for cue in timeline.cues:
        assert isinstance(cue.at_ms, int) and isinstance(cue.duration_ms, int)
        assert cue.at_ms == cursor, cue
        if cue.kind in (CueKind.CHAPTER, CueKind.MARK):
            assert cue.duration_ms == 0, cue
        else:
            assert cue.duration_ms > 0 or cue.kind is CueKind.SAY, cue
        cursor = cue.end_ms
    assert timeline.total_ms == cursor == timeline.cues[-1].end_ms


# --- exact arithmetic -------------------------------------------------------------------


def test_small_routine_total_is_exact() -> None:
    timeline = compile_1s()
    assert_contiguous(timeline)
    # Hand count: 9,100 intro + 7,400 opening + 3,000 side + 2 x 10,550 reps + 2,200 outro.
    assert (INTRO_MS, OPENING_MS, SIDE_OPEN_MS, REP_MS, OUTRO_MS) == (
        9100,
        7400,
        3000,
        10550,
        2200,
    )
    assert timeline.total_ms == INTRO_MS + OPENING_MS + SIDE_OPEN_MS + 2 * REP_MS + OUTRO_MS
    assert timeline.total_ms == 42_800


def test_sets_and_sides_add_rests_and_switches_exactly() -> None:
    timeline = compile_1s({"sides": "both", "sets": 2, "rest_between_sets_s": 10.0})
    assert_contiguous(timeline)
    set_ms = SAY_MS + 2 * REP_MS  # "Set one of two." + two reps
    rest_ms = SAY_MS + 10_000  # "Rest." + 10 s
    side_ms = SIDE_OPEN_MS + set_ms + rest_ms + set_ms
    switch_ms = EARCON_MS[Earcon.SIDE_SWITCH] + SAY_MS + 5000  # tone, "Rest, then..." + 5 s
    assert timeline.total_ms == INTRO_MS + OPENING_MS + 2 * side_ms + switch_ms + OUTRO_MS
    assert timeline.total_ms == 141_550


def test_two_exercises_rest_between_them() -> None:
    routine = make_routine(exercise_data(), exercise_data(id="second", name="the second glide"))
    timeline = compile_timeline(routine, speech_ms=one_second)
    assert_contiguous(timeline)
    between_ms = SAY_MS + EXERCISE_REST_MS
    exercise_ms = OPENING_MS + SIDE_OPEN_MS + 2 * REP_MS
    assert timeline.total_ms == INTRO_MS + 2 * exercise_ms + between_ms + OUTRO_MS
    assert phrases.exercise_done("the lying glide") in said(timeline)
    assert phrases.exercise_done("the second glide") not in said(timeline)


def test_hold_is_counted_each_second_and_lasts_exactly_hold_s() -> None:
    timeline = compile_1s({"hold_s": 5.0})
    starts = mark_cues(timeline, Phase.HOLD_START)
    ends = mark_cues(timeline, Phase.HOLD_END)
    assert len(starts) == len(ends) == 2
    for start, end in zip(starts, ends, strict=True):
        assert end.at_ms - start.at_ms == 5000
        inside = [c for c in timeline.cues if start.at_ms <= c.at_ms < end.at_ms]
        words = [(c.at_ms - start.at_ms, c.text) for c in inside if c.kind is CueKind.SAY]
        assert words == [
            (0, "Hold."),
            (1000, "Two."),
            (2000, "Three."),
            (3000, "Four."),
            (4000, "Five."),
        ]
        assert all(c.role is Role.COUNT for c in inside if c.kind is CueKind.SAY)


def test_hold_count_with_estimated_speech_pauses_to_each_second() -> None:
    routine = make_routine(exercise_data(hold_s=3.0))
    timeline = compile_timeline(routine)
    start = mark_cues(timeline, Phase.HOLD_START)[0]
    end = mark_cues(timeline, Phase.HOLD_END)[0]
    inside = [c for c in timeline.cues if start.at_ms <= c.at_ms < end.at_ms]
    assert [c.kind for c in inside] == [CueKind.MARK] + [CueKind.SAY, CueKind.PAUSE] * 3
    assert [c.at_ms - start.at_ms for c in inside if c.kind is CueKind.SAY] == [0, 1000, 2000]
    assert end.at_ms - start.at_ms == 3000


def test_fractional_hold_leaves_out_a_count_that_would_overrun() -> None:
    timeline = compile_1s({"hold_s": 2.5})
    start = mark_cues(timeline, Phase.HOLD_START)[0]
    end = mark_cues(timeline, Phase.HOLD_END)[0]
    inside = [c for c in timeline.cues if start.at_ms <= c.at_ms < end.at_ms]
    assert [c.text for c in inside if c.kind is CueKind.SAY] == ["Hold.", "Two."]
    assert end.at_ms - start.at_ms == 2500


def test_slow_speech_skips_counts_rather_than_drifting() -> None:
    routine = make_routine(exercise_data(hold_s=6.0))
    timeline = compile_timeline(routine, speech_ms=lambda text: 1500)
    start = mark_cues(timeline, Phase.HOLD_START)[0]
    end = mark_cues(timeline, Phase.HOLD_END)[0]
    assert end.at_ms - start.at_ms == 6000
    inside = [c for c in timeline.cues if start.at_ms <= c.at_ms < end.at_ms]
    words = [(c.at_ms - start.at_ms, c.text) for c in inside if c.kind is CueKind.SAY]
    # Every word is said on its own second; none runs past the hold.
    assert words == [(0, "Hold."), (2000, "Three."), (4000, "Five.")]
    assert_contiguous(timeline)


def test_hold_in_last_phase_ends_with_and_relax() -> None:
    timeline = compile_1s({"rep": [{"say": "Lift the leg.", "hold": True}]})
    assert said(timeline).count(phrases.RELAX) == 2
    end = mark_cues(timeline, Phase.HOLD_END)[0]
    after = [c for c in timeline.cues if c.at_ms >= end.at_ms and c.kind is not CueKind.MARK]
    assert after[0].earcon is Earcon.HOLD_END
    assert after[1].text == phrases.RELAX
    assert after[2].kind is CueKind.PAUSE and after[2].duration_ms == 2000


def test_no_hold_means_no_hold_tones_or_counts() -> None:
    timeline = compile_1s({"hold_s": None, "rep": [{"say": "Up."}, {"say": "Down."}]})
    assert not mark_cues(timeline, Phase.HOLD_START)
    assert not [c for c in timeline.cues if c.earcon in (Earcon.HOLD_START, Earcon.HOLD_END)]
    rep_ms = 2 * (SAY_MS + 2000) + SAY_MS
    assert timeline.total_ms == INTRO_MS + OPENING_MS + SIDE_OPEN_MS + 2 * rep_ms + OUTRO_MS


def test_movement_cue_is_said_then_followed_by_its_tempo() -> None:
    timeline = compile_1s({"tempo_s": 3.5})
    cues = list(timeline.cues)
    moves = [i for i, c in enumerate(cues) if c.role is Role.MOVE]
    assert moves
    for i in moves:
        assert cues[i + 1].kind is CueKind.PAUSE
        assert cues[i + 1].duration_ms == 3500


# --- pace ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pace", "tempo_ms", "rest_ms", "setup_ms"),
    [(0.5, 4000, 20_000, 4000), (0.8, 2500, 12_500, 2500), (1.5, 1333, 6667, 1333)],
)
def test_pace_scales_tempo_pauses_and_rests_but_not_holds(
    pace: float, tempo_ms: int, rest_ms: int, setup_ms: int
) -> None:
    timeline = compile_1s({"sets": 2}, pace=pace)
    assert_contiguous(timeline)
    cues = list(timeline.cues)
    move_pauses = {cues[i + 1].duration_ms for i, c in enumerate(cues) if c.role is Role.MOVE}
    assert move_pauses == {tempo_ms}
    rest = next(i for i, c in enumerate(cues) if c.text == phrases.REST)
    assert cues[rest + 1].duration_ms == rest_ms
    setup = next(
        i for i, c in enumerate(cues) if c.role is Role.SETUP and (c.text or "").startswith("Lie")
    )
    assert cues[setup + 1].duration_ms == setup_ms
    for start, end in zip(
        mark_cues(timeline, Phase.HOLD_START), mark_cues(timeline, Phase.HOLD_END), strict=True
    ):
        assert end.at_ms - start.at_ms == 3000


def test_pace_changes_only_paused_time() -> None:
    normal = compile_1s({"sets": 2, "sides": "both"})
    slow = compile_1s({"sets": 2, "sides": "both"}, pace=0.5)
    normal_pauses = [c for c in normal.cues if c.kind is CueKind.PAUSE]
    slow_pauses = [c for c in slow.cues if c.kind is CueKind.PAUSE]
    assert len(normal_pauses) == len(slow_pauses)  # the one-second hold counts have no pauses
    assert slow.total_ms - normal.total_ms == sum(c.duration_ms for c in normal_pauses)
    assert [c.text for c in normal.cues] == [c.text for c in slow.cues]


@pytest.mark.parametrize("pace", [0.49, 1.51, 0.0, -1.0, math.nan, math.inf])
def test_pace_out_of_range_is_a_clear_value_error(pace: float) -> None:
    with pytest.raises(ValueError, match=r"pace must be between 0\.5 and 1\.5"):
        TimelineOptions(pace=pace)


@pytest.mark.parametrize("pace", [0.5, 1.5])
def test_pace_limits_are_allowed(pace: float) -> None:
    assert_contiguous(compile_1s(pace=pace))


def test_side_first_cannot_be_affected() -> None:
    with pytest.raises(ValueError, match="side_first"):
        TimelineOptions(side_first=Leg.AFFECTED)


# --- sides and wording ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side_first", "legs"), [(Leg.LEFT, [Leg.LEFT, Leg.RIGHT]), (Leg.RIGHT, [Leg.RIGHT, Leg.LEFT])]
)
def test_both_sides_follow_side_first(side_first: Leg, legs: list[Leg]) -> None:
    timeline = compile_1s({"sides": "both"}, side_first=side_first)
    assert [m.leg for m in marks(timeline, Phase.SIDE_START)] == legs
    assert [m.leg for m in marks(timeline, Phase.SIDE_END)] == legs
    switch = [c.text for c in timeline.cues if c.role is Role.SWITCH]
    first, second = (leg.value for leg in legs)
    assert switch == [f"First, the {first} leg.", phrases.SWITCH_SIDES, f"Now the {second} leg."]
    tones = [c.earcon for c in timeline.cues if c.kind is CueKind.TONE]
    assert tones.count(Earcon.SIDE_SWITCH) == 1
    # The switch tone sits between the first side's end and the second side's start.
    end_first = mark_cues(timeline, Phase.SIDE_END)[0].at_ms
    start_second = mark_cues(timeline, Phase.SIDE_START)[1].at_ms
    tone = next(c for c in timeline.cues if c.earcon is Earcon.SIDE_SWITCH)
    assert end_first <= tone.at_ms < start_second
    assert start_second - end_first == EARCON_MS[Earcon.SIDE_SWITCH] + SAY_MS + 5000


@pytest.mark.parametrize("sides", ["left", "right"])
def test_fixed_side_ignores_side_first(sides: str) -> None:
    timeline = compile_1s({"sides": sides}, side_first=Leg.RIGHT if sides == "left" else Leg.LEFT)
    assert [m.leg for m in marks(timeline, Phase.SIDE_START)] == [Leg(sides)]
    assert f"This one is for the {sides} leg." in said(timeline)
    assert not [c for c in timeline.cues if c.earcon is Earcon.SIDE_SWITCH]


def test_affected_leg_unchosen_says_your_painful_leg() -> None:
    timeline = compile_1s({"sides": "affected"})
    assert [m.leg for m in marks(timeline, Phase.SIDE_START)] == [Leg.AFFECTED]
    assert {m.leg for m in marks(timeline, Phase.REP_START)} == {Leg.AFFECTED}
    assert "This one is for your painful leg." in said(timeline)


@pytest.mark.parametrize("leg", [Leg.LEFT, Leg.RIGHT])
def test_affected_leg_chosen_names_that_leg(leg: Leg) -> None:
    timeline = compile_1s({"sides": "affected"}, affected_leg=leg)
    assert [m.leg for m in marks(timeline, Phase.SIDE_START)] == [leg]
    assert f"This one is for the {leg.value} leg." in said(timeline)
    assert not any("painful" in text for text in said(timeline) if "leg." in text)


def test_intro_covers_disclaimer_red_flags_and_every_command() -> None:
    timeline = compile_1s()
    roles = [c.role for c in timeline.cues if c.kind is CueKind.SAY]
    assert roles[:3] == [Role.INTRO, Role.INTRO, Role.DISCLAIMER]
    assert Role.RED_FLAGS in roles and Role.COMMANDS in roles
    commands = next(c.text or "" for c in timeline.cues if c.role is Role.COMMANDS)
    for word in ("stop", "pain", "next", "pause", "repeat", "slower", "faster", "help"):
        assert word in commands.lower()
    assert commands == phrases.COMMANDS_HELP


def intro_ms(timeline: Timeline) -> int:
    return next(c.at_ms for c in timeline.cues if c.kind is CueKind.CHAPTER)


def test_returning_user_gets_a_shorter_intro_that_still_warns() -> None:
    routine = make_routine()
    full = compile_timeline(routine, TimelineOptions())
    short = compile_timeline(routine, TimelineOptions(returning_user=True))
    assert intro_ms(short) < intro_ms(full)
    assert full.total_ms - short.total_ms == intro_ms(full) - intro_ms(short)
    short_intro = [c for c in short.cues if c.at_ms < intro_ms(short) and c.kind is CueKind.SAY]
    roles = {c.role for c in short_intro}
    assert {Role.DISCLAIMER, Role.RED_FLAGS, Role.COMMANDS} <= roles
    assert routine.safety.disclaimer not in said(short)
    assert routine.safety.disclaimer in said(full)
    for word in ("stop", "pain", "next", "pause", "repeat", "slower", "faster", "help"):
        assert word in phrases.COMMANDS_REMINDER.lower()


def test_exercise_opens_with_chapter_tone_setup_feel_and_stop() -> None:
    routine = make_routine()
    timeline = compile_timeline(routine, speech_ms=one_second)
    exercise = routine.exercises[0]
    chapter_index = next(i for i, c in enumerate(timeline.cues) if c.kind is CueKind.CHAPTER)
    chapter = timeline.cues[chapter_index]
    assert chapter.text == exercise.name
    assert chapter.mark is not None and chapter.mark.exercise_id == exercise.id
    following = [c for c in timeline.cues[chapter_index + 1 :] if c.kind is not CueKind.PAUSE]
    assert following[0].mark is not None and following[0].mark.phase is Phase.EXERCISE_START
    assert following[1].earcon is Earcon.EXERCISE_START
    texts = [c.text for c in following[2:6]]
    assert texts == [
        phrases.exercise_title(0, 1, exercise.name),
        *exercise.setup,
        exercise.feel,
        exercise.stop_if,
    ]


def test_outro_ends_with_session_end_tone_and_mark() -> None:
    timeline = compile_1s()
    last = timeline.cues[-3:]
    assert last[0].role is Role.OUTRO
    assert last[1].earcon is Earcon.SESSION_END
    assert last[1].duration_ms == EARCON_MS[Earcon.SESSION_END]
    assert last[2].mark is not None and last[2].mark.phase is Phase.SESSION_END
    assert last[2].at_ms == timeline.total_ms


def test_reps_are_counted_in_words() -> None:
    timeline = compile_1s({"reps_per_side": 12})
    counts = [c.text for c in timeline.cues if c.role is Role.COUNT and "That's" in (c.text or "")]
    assert counts[0] == "That's one."
    assert counts[4] == "That's five."
    assert counts[-1] == "That's twelve."
    assert len(counts) == 12


def test_set_announcements_only_with_several_sets() -> None:
    assert not [t for t in said(compile_1s()) if t.startswith("Set ")]
    texts = [t for t in said(compile_1s({"sets": 3})) if t.startswith("Set ")]
    assert texts == ["Set one of three.", "Set two of three.", "Set three of three."]
    assert said(compile_1s({"sets": 3})).count(phrases.REST) == 2


def test_encouragement_varies_and_never_repeats_back_to_back() -> None:
    routine = make_routine(
        exercise_data(sides="both", reps_per_side=10, sets=3, hold_s=None, rep=[{"say": "Go."}]),
        exercise_data(id="two", name="another", reps_per_side=7),
    )
    timeline = compile_timeline(routine, speech_ms=one_second)
    encouragements = [c.text or "" for c in timeline.cues if c.role is Role.ENCOURAGE]
    assert len(encouragements) > len(phrases.ENCOURAGEMENTS)
    assert len(set(encouragements)) == len(phrases.ENCOURAGEMENTS)
    for before, after in pairwise(encouragements):
        assert before != after


def test_encouragement_comes_after_every_third_rep_but_not_the_last() -> None:
    timeline = compile_1s({"reps_per_side": 7})
    cues = list(timeline.cues)
    after_rep = [
        cues[i - 1].text for i, c in enumerate(cues) if c.role is Role.ENCOURAGE
    ]  # each follows a count
    assert after_rep == ["That's three.", "That's six."]
    assert ENCOURAGE_EVERY_REPS == 3
    no_extra = compile_1s({"reps_per_side": 3})
    assert not [c for c in no_extra.cues if c.role is Role.ENCOURAGE]


# --- marks --------------------------------------------------------------------------------


def test_marks_are_nested_and_numbered() -> None:
    routine = make_routine(
        exercise_data(sides="both", sets=2, reps_per_side=3),
        exercise_data(id="two", name="another", sides="affected", reps_per_side=2),
    )
    timeline = compile_timeline(routine, TimelineOptions(side_first=Leg.RIGHT), one_second)
    all_marks = marks(timeline)
    assert all_marks[0].phase is Phase.SESSION_START
    assert all_marks[-1].phase is Phase.SESSION_END
    assert mark_cues(timeline, Phase.SESSION_START)[0].at_ms == 0

    expected: list[tuple[Phase, int, Leg | None, int | None, int | None]] = []
    plan = [(0, "supine", [Leg.RIGHT, Leg.LEFT], 2, 3), (1, "two", [Leg.AFFECTED], 1, 2)]
    for index, exercise_id, legs, sets, reps in plan:
        expected.append((Phase.EXERCISE_START, index, None, None, None))
        for leg in legs:
            expected.append((Phase.SIDE_START, index, leg, None, None))
            for set_number in range(1, sets + 1):
                expected.append((Phase.SET_START, index, leg, set_number, None))
                for rep in range(1, reps + 1):
                    expected.append((Phase.REP_START, index, leg, set_number, rep))
                    expected.append((Phase.HOLD_START, index, leg, set_number, rep))
                    expected.append((Phase.HOLD_END, index, leg, set_number, rep))
                    expected.append((Phase.REP_END, index, leg, set_number, rep))
            expected.append((Phase.SIDE_END, index, leg, None, None))
        expected.append((Phase.EXERCISE_END, index, None, None, None))
        ids = {m.exercise_id for m in all_marks if m.exercise_index == index}
        assert ids == {exercise_id}
    got = [(m.phase, m.exercise_index, m.leg, m.set_number, m.rep_number) for m in all_marks[1:-1]]
    assert got == expected


def test_every_rep_start_has_a_rep_end_after_it() -> None:
    timeline = compile_1s({"sides": "both", "sets": 2, "reps_per_side": 4})
    starts = mark_cues(timeline, Phase.REP_START)
    ends = mark_cues(timeline, Phase.REP_END)
    assert len(starts) == len(ends) == 2 * 2 * 4
    for start, end in zip(starts, ends, strict=True):
        assert start.mark is not None and end.mark is not None
        assert replace(start.mark, phase=Phase.REP_END) == end.mark
        assert start.at_ms < end.at_ms
    for leg in (Leg.LEFT, Leg.RIGHT):
        for set_number in (1, 2):
            numbers = [
                c.mark.rep_number
                for c in starts
                if c.mark and c.mark.leg is leg and c.mark.set_number == set_number
            ]
            assert numbers == [1, 2, 3, 4]


def test_chapter_and_exercise_start_share_the_offset() -> None:
    routine = make_routine(exercise_data(), exercise_data(id="b", name="b glide"))
    timeline = compile_timeline(routine)
    chapters = [c for c in timeline.cues if c.kind is CueKind.CHAPTER]
    starts = mark_cues(timeline, Phase.EXERCISE_START)
    assert [c.at_ms for c in chapters] == [c.at_ms for c in starts]
    assert [c.text for c in chapters] == ["the lying glide", "b glide"]


# --- speech timing ------------------------------------------------------------------------


def test_speech_ms_override_sets_every_say_duration() -> None:
    def timer(text: str) -> int:
        return 17 * len(text)

    timeline = compile_timeline(make_routine(exercise_data(hold_s=8.0)), speech_ms=timer)
    say_cues = [c for c in timeline.cues if c.kind is CueKind.SAY]
    assert say_cues
    assert all(c.duration_ms == timer(c.text or "") for c in say_cues)
    assert_contiguous(timeline)


def test_default_estimate_uses_rate_wpm() -> None:
    routine = make_routine()
    slow = compile_timeline(routine, TimelineOptions(rate_wpm=100))
    fast = compile_timeline(routine, TimelineOptions(rate_wpm=200))
    for timeline, rate in ((slow, 100), (fast, 200)):
        for cue in timeline.cues:
            if cue.kind is CueKind.SAY:
                assert cue.duration_ms == estimate_speech_ms(cue.text or "", rate)
    assert slow.total_ms > fast.total_ms


def test_estimate_counts_words_and_punctuation() -> None:
    word_ms = round(60_000 / 140)
    assert estimate_speech_ms("Hold.", 140) == word_ms + SENTENCE_PAUSE_MS
    assert estimate_speech_ms("one, two", 120) == 1000 + COMMA_PAUSE_MS
    assert estimate_speech_ms("Don't stop... breathe!", 60) == 3000 + 2 * SENTENCE_PAUSE_MS
    assert estimate_speech_ms("Toes up — gently; slowly: now", 60) == 5000 + 3 * COMMA_PAUSE_MS
    assert estimate_speech_ms("", 140) == 0


def test_default_estimate_adds_the_voice_sentence_pause() -> None:
    routine = make_routine()
    plain = compile_timeline(routine, TimelineOptions(rate_wpm=150))
    paused = compile_timeline(routine, TimelineOptions(rate_wpm=150, sentence_pause_ms=400))
    says = sum(1 for cue in plain.cues if cue.kind is CueKind.SAY)
    # Hold counts that no longer fit their second are left out, so compare sentence by sentence.
    for cue in paused.cues:
        if cue.kind is CueKind.SAY:
            assert cue.duration_ms == estimate_speech_ms(cue.text or "", 150) + 400
    assert paused.total_ms > plain.total_ms + says // 2 * 400


def test_rate_wpm_out_of_range() -> None:
    with pytest.raises(ValueError, match="rate_wpm"):
        TimelineOptions(rate_wpm=0)
    with pytest.raises(ValueError, match="sentence_pause_ms"):
        TimelineOptions(sentence_pause_ms=-1)


@pytest.mark.parametrize("bad", [-1, 1.5, None, True])
def test_bad_speech_length_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="speech_ms must return a non-negative int"):
        compile_timeline(make_routine(), speech_ms=lambda text: bad)  # type: ignore[arg-type,return-value]


def test_numpy_integer_speech_lengths_become_plain_ints() -> None:
    import numpy as np

    timeline = compile_timeline(
        make_routine(),
        speech_ms=lambda text: np.int64(900),  # type: ignore[arg-type,return-value]
    )
    say = next(cue for cue in timeline.cues if cue.kind is CueKind.SAY)
    assert type(say.duration_ms) is int and say.duration_ms == 900
    assert type(timeline.total_ms) is int


def test_compile_is_pure_and_deterministic() -> None:
    routine = make_routine(exercise_data(sides="both", reps_per_side=7, sets=2))
    first = compile_timeline(routine, TimelineOptions(pace=0.8))
    second = compile_timeline(routine, TimelineOptions(pace=0.8))
    assert first == second
    assert first.routine_id == routine.id and first.title == routine.title


def test_cues_sorted_and_timed_cues_positive() -> None:
    timeline = compile_timeline(make_routine(exercise_data(sides="both", sets=2)))
    offsets = [c.at_ms for c in timeline.cues]
    assert offsets == sorted(offsets)
    assert all(c.duration_ms > 0 for c in timed(timeline))
    assert_contiguous(timeline)


def test_cue_end_ms() -> None:
    assert Cue(100, 250, CueKind.TONE, earcon=Earcon.HOLD_START).end_ms == 350
