"""Property tests: any valid routine compiles to a contiguous, consistent timeline."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from timeline_support import exercise_data, make_routine, mark_cues, one_second

from coach.routine import Routine
from coach.timeline import (
    CueKind,
    Leg,
    Phase,
    Role,
    SpeechTimer,
    TimelineOptions,
    compile_timeline,
    estimate_speech_ms,
)


def by_length(text: str) -> int:
    return 23 * len(text)


def estimate(text: str) -> int:
    return estimate_speech_ms(text, 150)


seconds = st.floats(min_value=0.1, max_value=30.0, allow_nan=False)


@st.composite
def exercises(draw: st.DrawFn, index: int) -> dict[str, Any]:
    phase_count = draw(st.integers(1, 3))
    holds = draw(st.lists(st.booleans(), min_size=phase_count, max_size=phase_count))
    return exercise_data(
        id=f"ex{index}",
        name=f"exercise {index}",
        sides=draw(st.sampled_from(["left", "right", "both", "affected"])),
        reps_per_side=draw(st.integers(1, 6)),
        sets=draw(st.integers(1, 3)),
        hold_s=draw(st.floats(0.1, 30.0)) if any(holds) else None,
        tempo_s=draw(st.floats(0.1, 10.0)),
        rest_between_sets_s=draw(st.floats(0.1, 300.0)),
        rest_between_sides_s=draw(st.floats(0.1, 300.0)),
        rep=[{"say": f"Move {i}.", "hold": hold} for i, hold in enumerate(holds)],
    )


@st.composite
def routines(draw: st.DrawFn) -> Routine:
    count = draw(st.integers(1, 3))
    return make_routine(*(draw(exercises(i)) for i in range(count)))


options_strategy = st.builds(
    TimelineOptions,
    pace=st.floats(0.5, 1.5),
    side_first=st.sampled_from([Leg.LEFT, Leg.RIGHT]),
    affected_leg=st.sampled_from(list(Leg)),
    returning_user=st.booleans(),
    rate_wpm=st.integers(80, 250),
)
timers = st.sampled_from([one_second, by_length, estimate, None])


@settings(max_examples=60, deadline=None)
@given(routine=routines(), options=options_strategy, timer=timers)
def test_any_routine_compiles_to_a_contiguous_consistent_timeline(
    routine: Routine, options: TimelineOptions, timer: SpeechTimer | None
) -> None:
    timeline = compile_timeline(routine, options, timer)
    cursor = 0
    for cue in timeline.cues:
        assert cue.at_ms == cursor
        if cue.kind in (CueKind.CHAPTER, CueKind.MARK):
            assert cue.duration_ms == 0
        elif cue.kind is CueKind.PAUSE:
            assert cue.duration_ms > 0
        cursor = cue.end_ms
    assert timeline.total_ms == cursor

    # Holds last exactly hold_s whatever the pace and speech lengths.
    for start, end in zip(
        mark_cues(timeline, Phase.HOLD_START), mark_cues(timeline, Phase.HOLD_END), strict=True
    ):
        assert start.mark is not None and start.mark.exercise_index is not None
        hold_s = routine.exercises[start.mark.exercise_index].hold_s
        assert hold_s is not None
        assert end.at_ms - start.at_ms == round(hold_s * 1000)

    # One rep_start and rep_end per rep, per set, per side.
    expected_reps = 0
    for exercise in routine.exercises:
        sides = 2 if exercise.sides == "both" else 1
        expected_reps += sides * exercise.sets * exercise.reps_per_side
    assert len(mark_cues(timeline, Phase.REP_START)) == expected_reps
    assert len(mark_cues(timeline, Phase.REP_END)) == expected_reps

    encouragements = [c.text for c in timeline.cues if c.role is Role.ENCOURAGE]
    assert all(a != b for a, b in pairwise(encouragements))
