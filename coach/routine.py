"""The routine format: what the physiotherapist wrote, declarative and validated.

Units: every duration in a routine file is in seconds (fields end in ``_s``);
the timeline converts them to integer milliseconds.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

Text = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=2000)
]
"""Spoken or displayed text: never empty."""

Slug = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$"),
]
"""An identifier: lower-case letters, digits, '-' and '_'."""

# Bounds that catch typos (a 10-minute hold, 500 reps) while allowing any
# reasonable prescription.
MAX_HOLD_S = 30.0
MAX_TEMPO_S = 10.0
MAX_REST_S = 300.0
MAX_REPS_PER_SIDE = 30
MAX_SETS = 5


class Position(StrEnum):
    """Body position for an exercise."""

    LYING_ON_BACK = "lying_on_back"
    SEATED = "seated"
    STANDING = "standing"


class Sides(StrEnum):
    """Which leg(s) an exercise works."""

    LEFT = "left"
    RIGHT = "right"
    BOTH = "both"
    AFFECTED = "affected"
    """Only the painful leg, chosen at session start."""


class Strict(BaseModel):
    """Base for routine models: unknown fields (typos) are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Source(Strict):
    """A text an exercise is based on, cited by title and site."""

    id: Slug = Field(description="Short id exercises use to cite this source.")
    title: Text = Field(description="Title of the article, leaflet or video.")
    site: Text = Field(description="Publisher or website where it appeared.")
    url: Text | None = Field(default=None, description="Address of the text, if public.")
    author: Text | None = Field(default=None, description="Author or clinician, if named.")


class DoseLimits(Strict):
    """The routine's own daily limits; coach never pushes past them."""

    max_reps_per_leg_per_day: int = Field(
        strict=True,
        ge=1,
        le=100,
        description="Most glide repetitions per leg in one day, all sessions together.",
    )
    max_sessions_per_day: int = Field(
        strict=True, ge=1, le=6, description="Most sessions in one day."
    )
    note: Text | None = Field(
        default=None, description="Why these limits (e.g. where sources disagree)."
    )


class Safety(Strict):
    """Safety text spoken before the first exercise, and the dose limits."""

    disclaimer: Text = Field(description="Said once, plainly: coach is not a medical device.")
    red_flags: Text = Field(
        description="Red-flag symptoms (saddle numbness, new bladder or bowel trouble, "
        "worsening leg weakness) and the advice to seek urgent care."
    )
    stop_rule: Text = Field(
        description="General rule for when to stop (sharp pain, increasing tingling or numbness)."
    )
    limits: DoseLimits


class RepPhase(Strict):
    """One spoken movement phase of a repetition."""

    say: Text = Field(description="The cue spoken as the movement starts.")
    hold: bool = Field(
        default=False,
        strict=True,
        description="Hold for the exercise's hold_s after this movement.",
    )


class Progression(Strict):
    """How the dose grows over the weeks."""

    start_reps: int = Field(
        strict=True, ge=1, le=MAX_REPS_PER_SIDE, description="Reps per side to start with."
    )
    target_reps: int = Field(
        strict=True, ge=1, le=MAX_REPS_PER_SIDE, description="Reps per side to build up to."
    )
    over_weeks: int = Field(
        strict=True, ge=1, le=52, description="Weeks over which to build up."
    )
    note: Text = Field(description="How to progress, in the words of the source.")

    @model_validator(mode="after")
    def _target_not_below_start(self) -> Progression:
        if self.target_reps < self.start_reps:
            raise ValueError("target_reps must be at least start_reps")
        return self


class Exercise(Strict):
    """One exercise: position, sides, dose, timing and spoken cues."""

    id: Slug = Field(description="Unique id within the routine.")
    name: Text = Field(description="Spoken name, e.g. 'the lying glide'.")
    source: Slug = Field(description="Id of the routine source this exercise comes from.")
    position: Position = Field(description="lying_on_back, seated or standing.")
    sides: Sides = Field(description="left, right, both, or affected (chosen at start).")
    reps_per_side: int = Field(
        strict=True, ge=1, le=MAX_REPS_PER_SIDE, description="Repetitions per side, per set."
    )
    sets: int = Field(default=1, strict=True, ge=1, le=MAX_SETS, description="Sets per side.")
    hold_s: float | None = Field(
        default=None,
        strict=True,
        gt=0,
        le=MAX_HOLD_S,
        description="Seconds to hold at the end of a 'hold' phase; omit for no hold.",
    )
    tempo_s: float = Field(
        strict=True,
        gt=0,
        le=MAX_TEMPO_S,
        description="Seconds each movement phase takes, at pace 1.",
    )
    rest_between_sets_s: float = Field(
        default=10.0,
        strict=True,
        gt=0,
        le=MAX_REST_S,
        description="Seconds of rest between sets.",
    )
    rest_between_sides_s: float = Field(
        default=5.0,
        strict=True,
        gt=0,
        le=MAX_REST_S,
        description="Seconds of rest when switching sides.",
    )
    setup: list[Text] = Field(min_length=1, description="Spoken set-up steps, in order.")
    rep: list[RepPhase] = Field(
        min_length=1, description="Spoken phases of one repetition, in order."
    )
    feel: Text = Field(description="What the user should feel.")
    stop_if: Text = Field(description="When to stop this exercise.")
    progression: Progression

    # Whether hold_s and the rep phases' 'hold' flags agree is checked with the
    # routine's other cross-field rules (consistency_problems), so it is reported
    # together with any field errors in the same file.


class Routine(Strict):
    """A whole session: metadata, sources, safety and ordered exercises."""

    id: Slug = Field(description="Short id of the routine, e.g. 'beginner'.")
    title: Text = Field(description="Title shown in lists and spoken at the start.")
    description: Text = Field(description="One or two sentences: who it is for, what it does.")
    language: Annotated[
        str, StringConstraints(strict=True, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    ] = Field(default="en", description="BCP 47 language tag of the spoken text.")
    sources: list[Source] = Field(
        min_length=1, description="The texts the exercises are based on, cited by id."
    )
    safety: Safety
    exercises: list[Exercise] = Field(
        min_length=1, max_length=20, description="The exercises, in the order they are done."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _consistent(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Routine:
        # Cross-field rules run on the raw data even when some fields are
        # invalid, so a file's author sees every problem at once.
        problems = [
            InitErrorDetails(
                type=PydanticCustomError("routine_consistency", problem.message),
                loc=problem.loc,
                input=problem.value,
            )
            for problem in consistency_problems(data)
        ]
        try:
            routine: Routine = handler(data)
        except ValidationError as err:
            raise ValidationError.from_exception_data(
                err.title, [*_error_details(err), *problems]
            ) from None
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return routine

    def exercise(self, exercise_id: str) -> Exercise:
        """The exercise with this id (KeyError if absent)."""
        for exercise in self.exercises:
            if exercise.id == exercise_id:
                return exercise
        raise KeyError(exercise_id)

    def source(self, source_id: str) -> Source:
        """The source with this id (KeyError if absent)."""
        for source in self.sources:
            if source.id == source_id:
                return source
        raise KeyError(source_id)


def _error_details(err: ValidationError) -> list[InitErrorDetails]:
    """Re-raisable copies of ``err``'s line errors."""
    details: list[InitErrorDetails] = []
    for error in err.errors():
        ctx = error.get("ctx")
        if ctx is not None and "error" in ctx:
            # A ValueError raised in a validator: keep its text, not the exception object.
            kind: Any = PydanticCustomError("value_error", str(ctx["error"]))
        else:
            kind = error["type"]
        detail = InitErrorDetails(type=kind, loc=error["loc"], input=error["input"])
        if ctx is not None and "error" not in ctx:
            detail["ctx"] = ctx
        details.append(detail)
    return details


@dataclass(frozen=True, slots=True)
class ConsistencyProblem:
    """A rule that spans several fields, broken at ``loc``."""

    loc: tuple[str | int, ...]
    message: str
    value: object


def _items(data: Mapping[str, Any], key: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """The (index, mapping) entries of the list ``data[key]``, skipping malformed ones."""
    entries = data.get(key)
    if isinstance(entries, list):
        for index, entry in enumerate(entries):
            if isinstance(entry, Mapping):
                yield index, entry


def _whole(value: object) -> int | None:
    return value if type(value) is int else None


def consistency_problems(data: object) -> list[ConsistencyProblem]:
    """Cross-field problems in raw routine data (a parsed YAML mapping or a Routine).

    Duplicate source or exercise ids, an exercise citing an unknown source, and
    a session whose reps per leg exceed ``safety.limits.max_reps_per_leg_per_day``.
    Malformed parts are skipped: field validation reports them.
    """
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    if not isinstance(data, Mapping):
        return []
    problems: list[ConsistencyProblem] = []

    source_ids: dict[str, int] = {}
    for index, source in _items(data, "sources"):
        source_id = source.get("id")
        if not isinstance(source_id, str):
            continue
        source_id = source_id.strip()
        if source_id in source_ids:
            problems.append(
                ConsistencyProblem(
                    ("sources", index, "id"),
                    f"duplicate source id '{source_id}' "
                    f"(already used by sources[{source_ids[source_id]}])",
                    source_id,
                )
            )
        source_ids.setdefault(source_id, index)

    exercise_ids: dict[str, int] = {}
    for index, exercise in _items(data, "exercises"):
        exercise_id = exercise.get("id")
        if isinstance(exercise_id, str):
            exercise_id = exercise_id.strip()
            if exercise_id in exercise_ids:
                problems.append(
                    ConsistencyProblem(
                        ("exercises", index, "id"),
                        f"duplicate exercise id '{exercise_id}' "
                        f"(already used by exercises[{exercise_ids[exercise_id]}])",
                        exercise_id,
                    )
                )
            exercise_ids.setdefault(exercise_id, index)
        problems.extend(_hold_problems(index, exercise))
        cited = exercise.get("source")
        if isinstance(cited, str) and source_ids and cited.strip() not in source_ids:
            message = f"unknown source '{cited.strip()}'"
            close = difflib.get_close_matches(cited.strip(), list(source_ids), n=1)
            if close:
                message += f"; did you mean '{close[0]}'?"
            message += f" (sources: {', '.join(source_ids)})"
            problems.append(ConsistencyProblem(("exercises", index, "source"), message, cited))

    problems.extend(_dose_problems(data))
    return problems


def _hold_problems(index: int, exercise: Mapping[str, Any]) -> list[ConsistencyProblem]:
    """A 'hold: true' phase needs hold_s, and hold_s needs a phase that holds."""
    phases = exercise.get("rep")
    if not isinstance(phases, list):
        return []
    flags = [phase.get("hold", False) for phase in phases if isinstance(phase, Mapping)]
    if not all(isinstance(flag, bool) for flag in flags):
        return []  # a malformed flag is a field error of its own
    holds = any(flags)
    hold_s = exercise.get("hold_s")
    if holds and hold_s is None:
        return [
            ConsistencyProblem(
                ("exercises", index, "rep"),
                "a rep phase has 'hold: true' but hold_s is not set",
                phases,
            )
        ]
    if hold_s is not None and not holds:
        return [
            ConsistencyProblem(
                ("exercises", index, "hold_s"),
                "hold_s is set but no rep phase has 'hold: true'",
                hold_s,
            )
        ]
    return []


def _dose_problems(data: Mapping[str, Any]) -> list[ConsistencyProblem]:
    """Where the session's reps per leg first exceed the routine's own daily limit."""
    safety = data.get("safety")
    limits = safety.get("limits") if isinstance(safety, Mapping) else None
    limit = _whole(limits.get("max_reps_per_leg_per_day")) if isinstance(limits, Mapping) else None
    if limit is None:
        return []
    # 'affected' may turn out to be either leg, and 'both' works each leg.
    works = {
        "left": {Sides.LEFT, Sides.BOTH, Sides.AFFECTED},
        "right": {Sides.RIGHT, Sides.BOTH, Sides.AFFECTED},
    }
    totals = dict.fromkeys(works, 0)
    reported: set[str] = set()
    problems: list[ConsistencyProblem] = []
    for index, exercise in _items(data, "exercises"):
        reps = _whole(exercise.get("reps_per_side"))
        sets = _whole(exercise.get("sets", 1))
        sides = exercise.get("sides")
        if reps is None or sets is None or not isinstance(sides, str) or sides not in set(Sides):
            continue
        if not (1 <= reps <= MAX_REPS_PER_SIDE and 1 <= sets <= MAX_SETS):
            continue  # Out of range already; field validation says so.
        over = []
        for leg, sides_for_leg in works.items():
            if sides in sides_for_leg:
                totals[leg] += reps * sets
                if totals[leg] > limit and leg not in reported:
                    reported.add(leg)
                    over.append(leg)
        if over:
            legs = " and ".join(f"{totals[leg]} on the {leg} leg" for leg in over)
            problems.append(
                ConsistencyProblem(
                    ("exercises", index, "reps_per_side"),
                    f"the session reaches {legs} here (reps_per_side x sets, summed over "
                    f"exercises), above safety.limits.max_reps_per_leg_per_day = {limit}",
                    reps,
                )
            )
    return problems
