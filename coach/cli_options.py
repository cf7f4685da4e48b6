"""Command-line options shared by the commands that compile a session (plan, render, run)."""

from __future__ import annotations

import argparse

from coach.loader import DEFAULT_ROUTINE_ID
from coach.timeline import MAX_PACE, MIN_PACE, Leg

LEG_CHOICES = [Leg.LEFT.value, Leg.RIGHT.value]


def add_routine_argument(parser: argparse.ArgumentParser) -> None:
    """The optional ROUTINE positional: a built-in id or a path."""
    parser.add_argument(
        "routine",
        nargs="?",
        metavar="ROUTINE",
        help=f"built-in routine id or path to a routine file (default: {DEFAULT_ROUTINE_ID})",
    )


def add_pace_argument(parser: argparse.ArgumentParser) -> None:
    """``--pace``: speed of movements, pauses and rests (never holds)."""
    parser.add_argument(
        "--pace",
        type=float,
        default=1.0,
        help=f"speed of movements, pauses and rests, {MIN_PACE} to {MAX_PACE} "
        "(0.8 is 20%% slower; holds never change; default 1.0)",
    )


def add_side_first_argument(parser: argparse.ArgumentParser) -> None:
    """``--side-first``: which leg starts in exercises for both legs."""
    parser.add_argument(
        "--side-first",
        choices=LEG_CHOICES,
        default=Leg.LEFT.value,
        help="leg to start with in exercises for both legs (default: left)",
    )


def add_affected_leg_argument(parser: argparse.ArgumentParser, *, default_help: str) -> None:
    """``--affected-leg``: the painful leg, for exercises done on it only."""
    parser.add_argument(
        "--affected-leg",
        choices=LEG_CHOICES,
        default=None,
        help=f"the painful leg, for exercises done on it only (default: {default_help})",
    )
