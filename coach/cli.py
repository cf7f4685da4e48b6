"""The ``coach`` command line: discovers subcommands and turns errors into exit codes."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import cast

import coach.commands
from coach import __version__
from coach.errors import CoachError


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every subcommand module in ``coach.commands``."""
    parser = argparse.ArgumentParser(
        prog="coach",
        description="Offline, eyes-free voice coach for sciatic nerve glides.",
    )
    parser.add_argument("--version", action="version", version=f"coach {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(coach.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"coach.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = cast("Callable[[argparse.Namespace], int] | None", getattr(args, "func", None))
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return func(args)
    except CoachError as err:
        # A multi-line message is a list of located problems (FILE:LINE:COL: ...): print as is.
        text = err.message if "\n" in err.message else f"coach: {err.message}"
        print(text, file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("coach: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
