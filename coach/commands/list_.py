"""``coach list``: the built-in routines with their duration and exercises."""

from __future__ import annotations

import argparse
import json
from typing import Any

from coach.loader import DEFAULT_ROUTINE_ID, builtin_ids, load_builtin
from coach.routine import Routine
from coach.timeline import compile_timeline


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``list`` subcommand."""
    parser = sub.add_parser(
        "list",
        help="list the built-in routines",
        description="List the built-in routines: id, title, duration and exercises.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    parser.set_defaults(func=run)


def describe_routine(routine: Routine) -> dict[str, Any]:
    """A routine summary: id, title, description, total_ms (default options) and exercises."""
    return {
        "id": routine.id,
        "title": routine.title,
        "description": routine.description,
        "default": routine.id == DEFAULT_ROUTINE_ID,
        "total_ms": compile_timeline(routine).total_ms,
        "exercises": [
            {
                "id": exercise.id,
                "name": exercise.name,
                "position": exercise.position.value,
                "sides": exercise.sides.value,
                "reps_per_side": exercise.reps_per_side,
                "sets": exercise.sets,
                "hold_s": exercise.hold_s,
                "source": exercise.source,
            }
            for exercise in routine.exercises
        ],
    }


def format_duration(total_ms: int) -> str:
    """``m:ss``, rounded to the nearest second."""
    minutes, seconds = divmod(round(total_ms / 1000), 60)
    return f"{minutes}:{seconds:02d}"


def run(args: argparse.Namespace) -> int:
    """Print the built-in routines as a table or as JSON."""
    summaries = [describe_routine(load_builtin(routine_id)) for routine_id in builtin_ids()]
    if args.json:
        print(json.dumps(summaries, indent=2, ensure_ascii=False))
        return 0
    id_width = max(len(summary["id"]) for summary in summaries)
    title_width = max(len(summary["title"]) for summary in summaries)
    for summary in summaries:
        names = ", ".join(exercise["name"] for exercise in summary["exercises"])
        marker = " (default)" if summary["default"] else ""
        print(
            f"{summary['id']:<{id_width}}  {summary['title']:<{title_width}}  "
            f"{format_duration(summary['total_ms']):>6}  {names}{marker}"
        )
    return 0
