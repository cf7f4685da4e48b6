"""The routine model itself: cross-field rules hold for any caller, not only the loader."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from routine_support import valid_text

from coach.routine import Routine, Sides, consistency_problems


def valid_data() -> dict[str, Any]:
    data = yaml.safe_load(valid_text())
    assert isinstance(data, dict)
    return data


def errors_of(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        Routine.model_validate(data)
    return [(tuple(error["loc"]), error["msg"]) for error in caught.value.errors()]


def test_valid_data_builds_a_frozen_routine() -> None:
    routine = Routine.model_validate(valid_data())
    assert routine.exercise("glide").sides is Sides.BOTH
    assert routine.source("src").site == "A site"
    assert consistency_problems(routine) == []
    with pytest.raises(ValidationError):
        routine.id = "other"  # type: ignore[misc]


def test_cross_field_problems_come_with_field_problems() -> None:
    data = valid_data()
    second = copy.deepcopy(data["exercises"][0])
    second["tempo_s"] = 0
    second["source"] = "nowhere"
    data["exercises"].append(second)
    assert errors_of(data) == [
        (("exercises", 1, "tempo_s"), "Input should be greater than 0"),
        (("exercises", 1, "id"), "duplicate exercise id 'glide' (already used by exercises[0])"),
        (("exercises", 1, "source"), "unknown source 'nowhere' (sources: src)"),
    ]


def test_daily_limit_counts_affected_and_both_for_each_leg() -> None:
    data = valid_data()
    data["safety"]["limits"]["max_reps_per_leg_per_day"] = 14
    data["exercises"][0]["sides"] = "right"
    data["exercises"][0]["reps_per_side"] = 5  # right: 5
    extra = []
    for index, sides in enumerate(["affected", "left", "both"]):
        exercise = copy.deepcopy(data["exercises"][0])
        exercise["id"] = f"e{index}"
        exercise["sides"] = sides
        extra.append(exercise)
    data["exercises"] += extra
    # right: 5, 10, 10, 15 (over at index 3); left: 0, 5, 10, 15 (over at index 3).
    assert errors_of(data) == [
        (
            ("exercises", 3, "reps_per_side"),
            "the session reaches 15 on the left leg and 15 on the right leg here "
            "(reps_per_side x sets, summed over exercises), "
            "above safety.limits.max_reps_per_leg_per_day = 14",
        )
    ]


def test_sets_multiply_reps() -> None:
    data = valid_data()
    data["exercises"][0]["sets"] = 5
    assert [loc for loc, _ in errors_of(data)] == [("exercises", 0, "reps_per_side")]


def test_bools_are_not_numbers() -> None:
    data = valid_data()
    data["exercises"][0]["sets"] = True
    assert errors_of(data) == [(("exercises", 0, "sets"), "Input should be a valid integer")]


def test_consistency_problems_skip_malformed_data() -> None:
    assert consistency_problems("not a mapping") == []
    assert consistency_problems({"sources": "x", "exercises": [1, None, {"id": 3}]}) == []


def test_json_schema_documents_units() -> None:
    schema = Routine.model_json_schema()
    exercise = schema["$defs"]["Exercise"]["properties"]
    assert "Seconds" in exercise["hold_s"]["description"]
    assert exercise["reps_per_side"]["maximum"] == 30
    assert schema["additionalProperties"] is False
