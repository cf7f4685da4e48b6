"""``coach check PATH...``: validate routine files and point at every problem."""

from __future__ import annotations

import argparse
import sys

from coach.loader import RoutineError, load_routine


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``check`` subcommand."""
    parser = sub.add_parser(
        "check",
        help="validate routine files",
        description="Validate routine files. Prints 'PATH: ok' for each valid file and every "
        "problem as FILE:LINE:COL: field: message on stderr. Exit status 2 if any is invalid.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="routine YAML file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check each file; 0 if all are valid, 2 otherwise."""
    status = 0
    for path in args.paths:
        try:
            load_routine(path)
        except RoutineError as err:
            status = 2
            for problem in err.problems:
                print(problem, file=sys.stderr)
        else:
            print(f"{path}: ok")
    return status
