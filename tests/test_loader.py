"""Routine loading: every kind of mistake is reported at its exact FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routine_support import (
    TYPOS_PATH,
    VALID_PATH,
    edited,
    only_problem,
    problems,
    valid_text,
)

from coach.errors import CoachError
from coach.loader import (
    DEFAULT_ROUTINE_ID,
    MAX_FILE_BYTES,
    Problem,
    RoutineError,
    builtin_ids,
    load_routine,
    parse_routine,
    resolve_routine,
)


def test_valid_routine_loads() -> None:
    routine = load_routine(VALID_PATH)
    assert routine.id == "test"
    assert routine.exercises[0].hold_s == 3.0


# -- field validation, each pointed at the value -------------------------------------------


def test_unknown_field_points_at_key_and_suggests() -> None:
    text = edited("    hold_s: 3\n", "    hold_sec: 3\n    hold_s: 3\n")
    assert only_problem(text) == (
        "22:5: exercises[0].hold_sec: unknown field 'hold_sec'; did you mean 'hold_s'?"
    )


def test_unknown_field_without_close_match_lists_known_fields() -> None:
    text = edited("  stop_rule: Stop on sharp pain.\n", "  stop_rule: Stop.\n  zzz: 1\n")
    message = only_problem(text)
    assert message.startswith("12:3: safety.zzz: unknown field 'zzz' (known fields: disclaimer")


def test_unknown_top_level_field() -> None:
    text = edited("title: Test routine\n", "title: Test routine\ntitel: again\n")
    assert only_problem(text) == "3:1: titel: unknown field 'titel'; did you mean 'title'?"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("tempo_s: 2", "tempo_s: 0", "23:14: exercises[0].tempo_s: must be greater than 0 (got 0)"),
        (
            "tempo_s: 2",
            "tempo_s: -1.5",
            "23:14: exercises[0].tempo_s: must be greater than 0 (got -1.5)",
        ),
        ("hold_s: 3", "hold_s: 0", "22:13: exercises[0].hold_s: must be greater than 0 (got 0)"),
        (
            "reps_per_side: 5",
            "reps_per_side: 0",
            "21:20: exercises[0].reps_per_side: must be at least 1 (got 0)",
        ),
        # Absurd values: a 10-minute hold, 500 reps.
        ("hold_s: 3", "hold_s: 600", "22:13: exercises[0].hold_s: must be at most 30 (got 600)"),
        (
            "reps_per_side: 5",
            "reps_per_side: 500",
            "21:20: exercises[0].reps_per_side: must be at most 30 (got 500)",
        ),
        (
            "max_sessions_per_day: 1",
            "max_sessions_per_day: 40",
            "14:27: safety.limits.max_sessions_per_day: must be at most 6 (got 40)",
        ),
    ],
)
def test_out_of_range_numbers(old: str, new: str, expected: str) -> None:
    assert only_problem(edited(old, new)) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("feel: A mild stretch.", "feel: ''", "30:11: exercises[0].feel: must not be empty"),
        ("say: Bend and relax.", "say: '   '", "29:14: exercises[0].rep[1].say: must not be empty"),
        ("      - Lie down.\n", "      - ''\n", "25:9: exercises[0].setup[0]: must not be empty"),
        (
            "setup:\n      - Lie down.\n",
            "setup: []\n",
            "24:12: exercises[0].setup: must not be empty",
        ),
        (
            "feel: A mild stretch.",
            "feel:",
            "30:10: exercises[0].feel: must be text (got nothing); "
            "put it in quotes if it is meant as text",
        ),
    ],
)
def test_empty_text(old: str, new: str, expected: str) -> None:
    assert only_problem(edited(old, new)) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "reps_per_side: 5",
            "reps_per_side: five",
            "21:20: exercises[0].reps_per_side: must be a whole number (got 'five')",
        ),
        (
            "reps_per_side: 5",
            "reps_per_side: '5'",
            "21:20: exercises[0].reps_per_side: must be a whole number (got '5')",
        ),
        (
            "reps_per_side: 5",
            "reps_per_side: 5.5",
            "21:20: exercises[0].reps_per_side: must be a whole number (got 5.5)",
        ),
        (
            "reps_per_side: 5",
            "reps_per_side: yes",
            "21:20: exercises[0].reps_per_side: must be a whole number (got true)",
        ),
        (
            "tempo_s: 2",
            "tempo_s: slow",
            "23:14: exercises[0].tempo_s: must be a number (got 'slow')",
        ),
        (
            "hold: true",
            "hold: 3",
            "28:15: exercises[0].rep[0].hold: must be true or false (got 3)",
        ),
        (
            "title: Test routine",
            "title: 2024",
            "2:8: title: must be text (got 2024); put it in quotes if it is meant as text",
        ),
        (
            "setup:\n      - Lie down.",
            "setup: Lie down.",
            "24:12: exercises[0].setup: must be a list (lines starting with '- ') "
            "(got 'Lie down.')",
        ),
        (
            "position: lying_on_back",
            "position: lying",
            "19:15: exercises[0].position: must be one of lying_on_back, seated, standing "
            "(got 'lying'); did you mean 'lying_on_back'?",
        ),
        (
            "sides: both",
            "sides: bothh",
            "20:12: exercises[0].sides: must be one of left, right, both, affected "
            "(got 'bothh'); did you mean 'both'?",
        ),
        (
            "id: test",
            "id: My Routine",
            "1:5: id: must be an id of lower-case letters, digits, '-' and '_' "
            "(got 'My Routine')",
        ),
        (
            "  limits:\n    max_reps_per_leg_per_day: 20\n    max_sessions_per_day: 1\n",
            "  limits: 20\n",
            "12:11: safety.limits: must be a mapping of fields (name: value) (got 20)",
        ),
    ],
)
def test_wrong_types(old: str, new: str, expected: str) -> None:
    assert only_problem(edited(old, new)) == expected


def test_missing_field_points_at_parent_mapping() -> None:
    text = edited("    stop_if: Sharp pain.\n", "")
    assert only_problem(text) == "16:5: exercises[0].stop_if: missing required field 'stop_if'"


def test_missing_top_level_field_points_at_the_start() -> None:
    text = edited("description: A routine for tests.\n", "")
    assert only_problem(text) == "1:1: description: missing required field 'description'"


def test_hold_without_hold_s_points_at_the_rep_phases() -> None:
    text = edited("    hold_s: 3\n", "")
    assert only_problem(text) == (
        "26:7: exercises[0].rep: a rep phase has 'hold: true' but hold_s is not set"
    )


def test_hold_problem_is_reported_with_the_typo_that_caused_it() -> None:
    found = problems(edited("    hold_s: 3\n", "    hold: 3\n"))
    assert [line.split(": ", 2)[1] for line in found] == ["exercises[0].hold", "exercises[0].rep"]


def test_progression_target_below_start() -> None:
    text = edited("target_reps: 10", "target_reps: 3")
    assert only_problem(text) == (
        "33:7: exercises[0].progression: target_reps must be at least start_reps"
    )


# -- cross-field rules ---------------------------------------------------------------------

SECOND_EXERCISE = """  - id: glide
    name: the second glide
    source: src
    position: seated
    sides: affected
    reps_per_side: 10
    sets: 2
    tempo_s: 2
    setup: [Sit.]
    rep:
      - say: Straighten.
    feel: A mild stretch.
    stop_if: Sharp pain.
    progression: {start_reps: 5, target_reps: 10, over_weeks: 4, note: Slowly.}
"""


def test_duplicate_exercise_id_and_daily_limit() -> None:
    text = valid_text() + SECOND_EXERCISE
    assert problems(text) == [
        "37:9: exercises[1].id: duplicate exercise id 'glide' (already used by exercises[0])",
        "42:20: exercises[1].reps_per_side: the session reaches 25 on the left leg and 25 on "
        "the right leg here (reps_per_side x sets, summed over exercises), above "
        "safety.limits.max_reps_per_leg_per_day = 20",
    ]


def test_reps_above_daily_limit_counts_only_the_legs_worked() -> None:
    text = edited("sides: both", "sides: left")
    text += SECOND_EXERCISE.replace("id: glide", "id: glide-2")
    assert problems(text) == [
        "42:20: exercises[1].reps_per_side: the session reaches 25 on the left leg here "
        "(reps_per_side x sets, summed over exercises), above "
        "safety.limits.max_reps_per_leg_per_day = 20",
    ]


def test_reps_at_the_daily_limit_are_fine() -> None:
    text = edited("max_reps_per_leg_per_day: 20", "max_reps_per_leg_per_day: 25")
    text += SECOND_EXERCISE.replace("id: glide", "id: g2")
    assert parse_routine(text).exercises[1].id == "g2"


def test_unknown_source_suggests_closest() -> None:
    text = edited("    source: src\n", "    source: scr\n")
    assert only_problem(text) == (
        "18:13: exercises[0].source: unknown source 'scr'; did you mean 'src'? (sources: src)"
    )


def test_duplicate_source_id() -> None:
    second = "  - id: src\n    title: B\n    site: C\n"
    text = edited("    site: A site\n", "    site: A site\n" + second)
    assert only_problem(text) == (
        "8:9: sources[1].id: duplicate source id 'src' (already used by sources[0])"
    )


# -- YAML-level problems -------------------------------------------------------------------


def test_invalid_yaml_reports_yamls_own_position() -> None:
    assert only_problem("id: test\ntitle: [unclosed\n") == (
        "3:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 2)"
    )
    assert only_problem("id: a\n  title: b\n") == (
        "2:8: invalid YAML: mapping values are not allowed here"
    )


def test_tab_indentation() -> None:
    assert only_problem("id: a\n\ttitle: b\n") == (
        "2:1: invalid YAML: found character '\\t' that cannot start any token; "
        "indent with spaces, not tabs"
    )


def test_control_character() -> None:
    assert only_problem("id: a\ntitle: b\x07\n") == (
        "2:9: invalid YAML: character U+0007 is not allowed in YAML text"
    )


def test_duplicate_keys_are_reported_with_other_problems() -> None:
    text = edited("    tempo_s: 2\n", "    tempo_s: 2\n    tempo_s: 0\n")
    assert problems(text) == [
        "24:5: exercises[0].tempo_s: duplicate key 'tempo_s' (first given on line 23); "
        "give each field once",
        "24:14: exercises[0].tempo_s: must be greater than 0 (got 0)",
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    assert only_problem(text) == (
        "1:1: the file is empty; a routine is a mapping that starts like 'id: my-routine'"
    )


def test_top_level_must_be_a_mapping() -> None:
    assert only_problem("# comment\n- id: a\n") == (
        "2:1: the top level must be a mapping of fields (id:, title:, exercises: ...), not a list"
    )
    assert only_problem("hello\n") == (
        "1:1: the top level must be a mapping of fields (id:, title:, exercises: ...), "
        "not a single value"
    )


def test_second_document_is_refused() -> None:
    assert only_problem(valid_text() + "---\nid: x\n") == (
        "37:1: invalid YAML: a routine file holds one document; remove the second '---'"
    )


def test_alias_bomb_is_refused_before_expansion() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    # Expanded, this document would be 9**9 strings; the first alias is refused instead.
    assert only_problem("\n".join(lines) + "\n") == (
        "2:8: YAML aliases (*a) are not allowed in routine files; write the value out in full"
    )


def test_deep_nesting_is_refused() -> None:
    message = only_problem("a: " + "[" * 100 + "]" * 100 + "\n")
    assert message == "1:19: nested more than 16 levels deep; routines need 5"


def test_python_tags_are_not_executed() -> None:
    text = edited("id: test", "id: !!python/object/apply:os.system [echo hi]")
    assert problems(text) == [
        "1:5: id: YAML tags (tag:yaml.org,2002:python/object/apply:os.system) "
        "are not allowed here",
    ]


def test_merge_keys_are_refused() -> None:
    text = edited("  - id: glide\n", "  - <<: {id: glide}\n")
    assert problems(text) == [
        "16:5: exercises[0]: YAML merge keys (<<) are not allowed",
        "16:5: exercises[0].id: missing required field 'id'",
    ]


# -- bytes and files -----------------------------------------------------------------------


def test_non_utf8_reports_the_line_of_the_bad_byte() -> None:
    data = valid_text().encode().replace(b"title: Test routine", b"title: Caf\xe9 routine")
    assert only_problem(data) == (
        "2:11: not valid UTF-8 (byte 0xe9 at offset 19); save the file as UTF-8"
    )


def test_utf16_is_refused_as_not_utf8() -> None:
    assert only_problem(valid_text().encode("utf-16")) == (
        "1:1: not valid UTF-8 (byte 0xff at offset 0); save the file as UTF-8"
    )


def test_utf8_bom_and_non_ascii_text_are_fine() -> None:
    data = "\ufeff".encode() + edited("Bend and relax.", "Bend — and relax, café.").encode()
    assert parse_routine(data).exercises[0].rep[1].say == "Bend — and relax, café."


def test_file_over_1_mb_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    # Not YAML at all: if it were parsed, the error would be different.
    path.write_bytes(b"[" * (MAX_FILE_BYTES + 1))
    with pytest.raises(RoutineError) as caught:
        load_routine(path)
    assert str(caught.value) == (
        f"{path}: file is 1,048,577 bytes; routine files are limited to 1,048,576 bytes (1 MB) "
        "and this one was not parsed"
    )


def test_file_of_exactly_1_mb_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "padded.yaml"
    text = valid_text()
    path.write_bytes(text.encode() + b"#" * (MAX_FILE_BYTES - len(text.encode())))
    assert load_routine(path).id == "test"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(RoutineError, match=r"nope\.yaml: no such file$"):
        load_routine(tmp_path / "nope.yaml")
    with pytest.raises(RoutineError, match=r"is a directory, not a routine$"):
        load_routine(tmp_path)


def test_problem_format() -> None:
    assert str(Problem("a.yaml", 3, 7, "exercises[0].hold_s", "too long")) == (
        "a.yaml:3:7: exercises[0].hold_s: too long"
    )
    assert str(Problem("a.yaml", 1, 1, "", "empty")) == "a.yaml:1:1: empty"
    assert str(Problem("a.yaml", None, None, "", "no such file")) == "a.yaml: no such file"


# -- all problems at once ------------------------------------------------------------------


def test_every_problem_in_a_file_is_reported_in_order() -> None:
    with pytest.raises(RoutineError) as caught:
        load_routine(TYPOS_PATH)
    name = str(TYPOS_PATH)
    assert [str(problem).removeprefix(name + ":") for problem in caught.value.problems] == [
        "2:5: id: must be an id of lower-case letters, digits, '-' and '_' (got 'Typo Routine')",
        "4:14: description: must not be empty",
        "17:5: exercises[0].stop_if: missing required field 'stop_if'",
        "19:13: exercises[0].source: unknown source 'scr'; did you mean 'src'? (sources: src)",
        "20:15: exercises[0].position: must be one of lying_on_back, seated, standing "
        "(got 'lying'); did you mean 'lying_on_back'?",
        "22:20: exercises[0].reps_per_side: must be at most 30 (got 500)",
        "23:5: exercises[0].hold_sec: unknown field 'hold_sec'; did you mean 'hold_s'?",
        "24:14: exercises[0].tempo_s: must be greater than 0 (got 0)",
        "36:9: exercises[1].id: duplicate exercise id 'glide' (already used by exercises[0])",
        "41:20: exercises[1].reps_per_side: the session reaches 40 on the left leg and 40 on "
        "the right leg here (reps_per_side x sets, summed over exercises), above "
        "safety.limits.max_reps_per_leg_per_day = 20",
        "43:14: exercises[1].tempo_s: must be a number (got 'five')",
    ]
    assert caught.value.exit_code == 2
    assert isinstance(caught.value, CoachError)


# -- resolving built-in ids and paths ------------------------------------------------------


def test_resolve_builtin_id_and_path() -> None:
    assert resolve_routine("beginner").id == "beginner"
    assert resolve_routine(str(VALID_PATH)).id == "test"
    assert DEFAULT_ROUTINE_ID in builtin_ids()


def test_resolve_unknown_names_the_builtin_ids() -> None:
    with pytest.raises(CoachError) as caught:
        resolve_routine("beginer")
    assert caught.value.message == (
        "no routine 'beginer': not a built-in routine ("
        + ", ".join(builtin_ids())
        + ") and no such file"
    )
    assert not isinstance(caught.value, RoutineError)


def test_resolve_a_broken_file_reports_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(edited("tempo_s: 2", "tempo_s: 0"), encoding="utf-8")
    with pytest.raises(RoutineError) as caught:
        resolve_routine(str(path))
    assert str(caught.value) == (
        f"{path}:23:14: exercises[0].tempo_s: must be greater than 0 (got 0)"
    )


def test_a_path_that_looks_like_a_builtin_id_is_read_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "beginner.yaml").write_text(valid_text(), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert resolve_routine("beginner.yaml").id == "test"
    assert resolve_routine("beginner").id == "beginner"


# -- no input escapes as anything but a RoutineError ---------------------------------------


def _parses_or_reports(data: str | bytes) -> None:
    try:
        parse_routine(data, "f.yaml")
    except RoutineError as err:
        assert err.problems
        for problem in err.problems:
            assert str(problem).startswith("f.yaml:")
            text = data.decode(errors="replace") if isinstance(data, bytes) else data
            # YAML also breaks lines at U+0085, U+2028 and U+2029, as splitlines() does.
            assert problem.line is None or 1 <= problem.line <= len(text.splitlines()) + 1


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#\n\t ?,.0159<%@`\\\x85é"))))
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    _parses_or_reports(text)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mutated_routines_never_raise_anything_else(data: st.DataObject) -> None:
    text = valid_text()
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 12)))
        insert = data.draw(st.sampled_from(["", "0", "-1", "x", ":", "- ", "\n", "  ", "[", "*a"]))
        text = text[:start] + insert + text[end:]
    _parses_or_reports(text.encode())
