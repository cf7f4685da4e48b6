"""``coach plan``: print a routine's timeline (what is said when) as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from coach.cli_options import (
    add_affected_leg_argument,
    add_pace_argument,
    add_routine_argument,
    add_side_first_argument,
)
from coach.errors import CoachError
from coach.loader import DEFAULT_ROUTINE_ID, resolve_routine
from coach.timeline import (
    Cue,
    CueKind,
    Leg,
    Mark,
    Timeline,
    TimelineOptions,
    compile_timeline,
    timeline_json,
)
from coach.voices import load_voice


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plan`` subcommand."""
    parser = sub.add_parser(
        "plan",
        help="print a routine's timeline: every cue with its offset",
        description="Print what the coach says and plays, and when, for a routine. "
        "Speech lengths are estimated from the speaking rate.",
    )
    add_routine_argument(parser)
    add_pace_argument(parser)
    add_side_first_argument(parser)
    add_affected_leg_argument(parser, default_help="ask at session start")
    parser.add_argument(
        "--voice",
        metavar="ID",
        help="estimate speech lengths from this voice profile's rate and pauses "
        "(default: 140 words per minute)",
    )
    parser.add_argument(
        "--returning",
        action="store_true",
        help="plan the shorter intro for someone who has heard the full one",
    )
    parser.add_argument(
        "--marks", action="store_true", help="also show the markers the session and journal use"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"routine", "total_ms", "cues": [...]} as JSON instead of a table',
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compile the routine and print its timeline."""
    routine = resolve_routine(args.routine or DEFAULT_ROUTINE_ID)
    voice: dict[str, Any] = {}
    if args.voice is not None:
        profile = load_voice(args.voice)
        voice = {
            "voice_id": profile.id,
            "rate_wpm": profile.rate_wpm,
            "sentence_pause_ms": profile.sentence_pause_ms,
        }
    try:
        options = TimelineOptions(
            pace=args.pace,
            side_first=Leg(args.side_first),
            affected_leg=Leg(args.affected_leg) if args.affected_leg else Leg.AFFECTED,
            returning_user=args.returning,
            **voice,
        )
    except ValueError as err:
        raise CoachError(f"invalid option: {err}") from None
    timeline = compile_timeline(routine, options)
    if args.json:
        json.dump(timeline_json(timeline), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    elif sys.stdout.isatty():
        _print_rich(timeline, show_marks=args.marks)
    else:
        _print_plain(timeline, sys.stdout, show_marks=args.marks)
    return 0


def format_offset(ms: int) -> str:
    """``ms`` as ``mm:ss.mmm`` (minutes keep counting past 59)."""
    minutes, rest_ms = divmod(ms, 60_000)
    seconds, millis = divmod(rest_ms, 1000)
    return f"{minutes:02d}:{seconds:02d}.{millis:03d}"


def format_length(ms: int) -> str:
    """A cue length in seconds, '' for cues that take no time."""
    return f"{ms / 1000:.3f}s" if ms else ""


def describe_mark(mark: Mark) -> str:
    """A marker in words: 'rep_start supine left set 1 rep 2'."""
    parts = [mark.phase.value]
    if mark.exercise_id is not None:
        parts.append(mark.exercise_id)
    if mark.leg is not None:
        parts.append(mark.leg.value)
    if mark.set_number is not None:
        parts.append(f"set {mark.set_number}")
    if mark.rep_number is not None:
        parts.append(f"rep {mark.rep_number}")
    return " ".join(parts)


def describe(cue: Cue) -> str:
    """What a cue says or plays, for the table."""
    if cue.kind is CueKind.SAY:
        return cue.text or ""
    if cue.kind is CueKind.TONE:
        return f"({cue.earcon.value if cue.earcon else 'tone'})"
    if cue.kind is CueKind.CHAPTER:
        return f"== {cue.text} =="
    if cue.kind is CueKind.MARK and cue.mark is not None:
        return f"[{describe_mark(cue.mark)}]"
    return ""


def _rows(timeline: Timeline, *, show_marks: bool) -> list[tuple[str, str, str, str]]:
    return [
        (format_offset(cue.at_ms), format_length(cue.duration_ms), cue.kind.value, describe(cue))
        for cue in timeline.cues
        if show_marks or cue.kind is not CueKind.MARK
    ]


def _summary(timeline: Timeline) -> str:
    chapters = sum(1 for cue in timeline.cues if cue.kind is CueKind.CHAPTER)
    return (
        f"Total: {format_offset(timeline.total_ms)} ({timeline.total_ms} ms), "
        f"{chapters} exercise{'s' if chapters != 1 else ''}, pace {timeline.options.pace:g}"
    )


def _print_plain(timeline: Timeline, out: TextIO, *, show_marks: bool) -> None:
    out.write(f"{timeline.routine_id}: {timeline.title}\n")
    out.write(f"{'OFFSET':<10}  {'LENGTH':>8}  {'KIND':<7}  WHAT\n")
    for offset, length, kind, what in _rows(timeline, show_marks=show_marks):
        out.write(f"{offset:<10}  {length:>8}  {kind:<7}  {what}".rstrip() + "\n")
    out.write(_summary(timeline) + "\n")


def _print_rich(timeline: Timeline, *, show_marks: bool) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    table = Table(title=f"{timeline.routine_id}: {timeline.title}", title_justify="left")
    table.add_column("Offset", no_wrap=True)
    table.add_column("Length", justify="right", no_wrap=True)
    table.add_column("Kind", no_wrap=True)
    table.add_column("What")
    styles = {"chapter": "bold", "tone": "cyan", "pause": "dim", "mark": "magenta"}
    for offset, length, kind, what in _rows(timeline, show_marks=show_marks):
        # Text cells: routine text is not rich markup ('[' must print as is).
        table.add_row(Text(offset), Text(length), Text(kind), Text(what), style=styles.get(kind))
    console.print(table)
    console.print(_summary(timeline), markup=False)
