"""The built-in routines: valid, cited, conservative, and kind to someone in pain."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from coach.loader import DEFAULT_ROUTINE_ID, builtin_ids, load_builtin
from coach.routine import Position, Routine, Sides
from coach.timeline import compile_timeline

REQUIRED_IDS = {"beginner", "supine", "seated", "standing", "tabletop", "full"}
JARGON = re.compile(
    r"\b(supine|prone|dorsi\w*|plantar\w*|flexion|extension|glute\w*|hamstring\w*|"
    r"neural|mobili[sz]\w*|contralateral|ipsilateral)\b",
    re.IGNORECASE,
)


def all_routines() -> list[Routine]:
    return [load_builtin(routine_id) for routine_id in builtin_ids()]


def spoken_texts(routine: Routine) -> list[str]:
    texts = [routine.title, routine.description, routine.safety.disclaimer]
    texts += [routine.safety.red_flags, routine.safety.stop_rule]
    for exercise in routine.exercises:
        texts += [exercise.name, *exercise.setup, exercise.feel, exercise.stop_if]
        texts += [phase.say for phase in exercise.rep]
    return texts


def test_required_routines_ship() -> None:
    assert set(builtin_ids()) >= REQUIRED_IDS
    assert DEFAULT_ROUTINE_ID == "beginner"


@pytest.mark.parametrize("routine_id", builtin_ids())
def test_routine_is_valid_and_compiles(routine_id: str) -> None:
    routine = load_builtin(routine_id)
    assert routine.id == routine_id
    timeline = compile_timeline(routine)
    assert timeline.total_ms > 0
    assert timeline.routine_id == routine_id


@pytest.mark.parametrize("routine_id", builtin_ids())
def test_every_exercise_cites_a_source_with_title_and_site(routine_id: str) -> None:
    routine = load_builtin(routine_id)
    cited = {exercise.source for exercise in routine.exercises}
    assert cited == {source.id for source in routine.sources}, "every source is cited"
    for exercise in routine.exercises:
        source = routine.source(exercise.source)
        assert source.title.strip() and source.site.strip()


def test_sources_are_the_same_text_in_every_routine() -> None:
    seen: dict[str, object] = {}
    for routine in all_routines():
        for source in routine.sources:
            assert seen.setdefault(source.id, source) == source, source.id


def test_named_authors_and_sites() -> None:
    sources = {source.id: source for routine in all_routines() for source in routine.sources}
    assert sources["flexopedia"].author == "Dani Winks"
    assert "Flexopedia" in sources["flexopedia"].site
    assert sources["well-good"].site == "Well+Good"
    assert "Poole Hospital NHS Foundation Trust" in (sources["poole-jospt"].author or "")
    assert "JOSPT" in sources["poole-jospt"].site or "2017" in (sources["poole-jospt"].author or "")


def test_beginner_is_lying_only_five_a_side() -> None:
    routine = load_builtin("beginner")
    for exercise in routine.exercises:
        assert exercise.position is Position.LYING_ON_BACK
        assert exercise.reps_per_side == 5
        assert exercise.sets == 1


def test_each_family_is_in_its_routine() -> None:
    def positions(routine_id: str) -> set[Position]:
        return {exercise.position for exercise in load_builtin(routine_id).exercises}

    assert positions("supine") == {Position.LYING_ON_BACK}
    assert positions("seated") == {Position.SEATED}
    assert positions("standing") == {Position.STANDING}
    tabletop = load_builtin("tabletop").exercises
    assert [(e.source, e.sides) for e in tabletop] == [("well-good", Sides.AFFECTED)]
    assert "slump-slider" in [e.id for e in load_builtin("seated").exercises]
    assert positions("full") == set(Position)


def test_holds_are_three_seconds_and_the_flexopedia_glide_has_none() -> None:
    for routine in all_routines():
        for exercise in routine.exercises:
            if exercise.source == "flexopedia":
                assert exercise.hold_s is None
                assert not any(phase.hold for phase in exercise.rep)
            elif exercise.hold_s is not None:
                assert exercise.hold_s == 3


def test_dose_is_conservative() -> None:
    for routine in all_routines():
        limits = routine.safety.limits
        assert limits.max_reps_per_leg_per_day <= 20
        assert limits.note and "conservative" in limits.note
        per_leg: Counter[str] = Counter()
        for exercise in routine.exercises:
            assert exercise.reps_per_side <= 5
            assert exercise.progression.start_reps == 5
            assert exercise.progression.target_reps <= 10
            for leg in ("left", "right"):
                if exercise.sides in (Sides(leg), Sides.BOTH, Sides.AFFECTED):
                    per_leg[leg] += exercise.reps_per_side * exercise.sets
        # A whole day of sessions stays under the routine's own daily limit.
        assert max(per_leg.values()) * limits.max_sessions_per_day <= (
            limits.max_reps_per_leg_per_day
        )


def test_safety_text_covers_red_flags_and_stop_rule() -> None:
    for routine in all_routines():
        safety = routine.safety
        assert "not a medical device" in safety.disclaimer
        red_flags = safety.red_flags.lower()
        for words in ("urgent", "bladder", "bowel", "numbness", "weaker"):
            assert words in red_flags, (routine.id, words)
        stop_rule = safety.stop_rule.lower()
        for words in ("sharp pain", "tingling", "numbness"):
            assert words in stop_rule, (routine.id, words)


def test_spoken_text_is_short_and_plain() -> None:
    for routine in all_routines():
        for text in spoken_texts(routine):
            assert not JARGON.search(text), (routine.id, text)
            for sentence in re.split(r"(?<=[.!?])\s+", text):
                assert len(sentence.split()) <= 22, (routine.id, sentence)
        for exercise in routine.exercises:
            for phase in exercise.rep:
                # Said every rep: a few words, not a paragraph.
                assert len(phase.say.split()) <= 10, (routine.id, phase.say)


def test_the_lying_glide_cues() -> None:
    glide = load_builtin("beginner").exercise("supine-glide")
    assert [(phase.say, phase.hold) for phase in glide.rep] == [
        ("Straighten the knee, toes toward you.", True),
        ("Bend and relax.", False),
    ]
