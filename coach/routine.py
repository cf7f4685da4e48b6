"""The routine format: what the physiotherapist wrote, declarative and validated.

Units: every duration in a routine file is in seconds (fields end in ``_s``);
the timeline converts them to integer milliseconds.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
"""Spoken or displayed text: never empty."""

Slug = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$"),
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
    url: str | None = Field(default=None, description="Address of the text, if public.")
    author: str | None = Field(default=None, description="Author or clinician, if named.")


class DoseLimits(Strict):
    """The routine's own daily limits; coach never pushes past them."""

    max_reps_per_leg_per_day: int = Field(
        ge=1, le=100, description="Most glide repetitions per leg in one day, all sessions."
    )
    max_sessions_per_day: int = Field(ge=1, le=6, description="Most sessions in one day.")
    note: str | None = Field(
        default=None, description="Why these limits (e.g. where sources disagree)."
    )


class Safety(Strict):
    """Safety text spoken before the first exercise, and the dose limits."""

    disclaimer: Text = Field(description="Said once, plainly: coach is not a medical device.")
    red_flags: Text = Field(
        description="Red-flag symptoms (saddle numbness, new bladder or bowel trouble, "
        "worsening leg weakness) and the advice to seek urgent care."
    )
    stop_rule: Text = Field(description="General rule for when to stop (sharp pain, tingling).")
    limits: DoseLimits


class RepPhase(Strict):
    """One spoken movement phase of a repetition."""

    say: Text = Field(description="The cue spoken as the movement starts.")
    hold: bool = Field(
        default=False, description="Hold for the exercise's hold_s after this movement."
    )


class Progression(Strict):
    """How the dose grows over the weeks."""

    start_reps: int = Field(ge=1, le=MAX_REPS_PER_SIDE, description="Reps per side to start.")
    target_reps: int = Field(ge=1, le=MAX_REPS_PER_SIDE, description="Reps per side to build to.")
    over_weeks: int = Field(ge=1, le=52, description="Weeks over which to build up.")
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
    position: Position
    sides: Sides = Field(description="left, right, both, or affected (chosen at start).")
    reps_per_side: int = Field(ge=1, le=MAX_REPS_PER_SIDE, description="Repetitions per side.")
    sets: int = Field(default=1, ge=1, le=MAX_SETS, description="Sets per side.")
    hold_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_HOLD_S,
        description="Seconds to hold at the end of a 'hold' phase; omit for no hold.",
    )
    tempo_s: float = Field(
        gt=0, le=MAX_TEMPO_S, description="Seconds each movement phase takes, at pace 1."
    )
    rest_between_sets_s: float = Field(
        default=10.0, gt=0, le=MAX_REST_S, description="Seconds of rest between sets."
    )
    rest_between_sides_s: float = Field(
        default=5.0, gt=0, le=MAX_REST_S, description="Seconds of rest when switching sides."
    )
    setup: list[Text] = Field(min_length=1, description="Spoken set-up steps, in order.")
    rep: list[RepPhase] = Field(
        min_length=1, description="Spoken phases of one repetition, in order."
    )
    feel: Text = Field(description="What the user should feel.")
    stop_if: Text = Field(description="When to stop this exercise.")
    progression: Progression

    @model_validator(mode="after")
    def _hold_is_consistent(self) -> Exercise:
        holds = any(phase.hold for phase in self.rep)
        if holds and self.hold_s is None:
            raise ValueError("a rep phase has 'hold: true' but hold_s is not set")
        if self.hold_s is not None and not holds:
            raise ValueError("hold_s is set but no rep phase has 'hold: true'")
        return self


class Routine(Strict):
    """A whole session: metadata, sources, safety and ordered exercises."""

    id: Slug
    title: Text
    description: Text
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = (
        Field(default="en", description="BCP 47 language tag of the spoken text.")
    )
    sources: list[Source] = Field(min_length=1)
    safety: Safety
    exercises: list[Exercise] = Field(min_length=1, max_length=20)

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
