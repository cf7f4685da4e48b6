"""``coach schema``: print the JSON Schema of routine files, for editors."""

from __future__ import annotations

import argparse
import json
from typing import Any

from coach.routine import Routine

SCHEMA_ID = "urn:coach:routine:v1"
"""Identifier of the routine schema; bump the version if the format changes incompatibly."""


def routine_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a routine file."""
    schema = Routine.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "coach routine",
    }


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``schema`` subcommand."""
    parser = sub.add_parser(
        "schema",
        help="print the JSON Schema of routine files",
        description="Print the JSON Schema of routine files (for editor autocompletion).",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the schema as indented JSON."""
    print(json.dumps(routine_schema(), indent=2, ensure_ascii=False))
    return 0
