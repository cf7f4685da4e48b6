"""``coach history``: recent sessions, repetitions per leg per day and pain reports."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from coach.errors import CoachError
from coach.journal import (
    DailyReps,
    Journal,
    PainReport,
    SessionEntry,
    default_journal_path,
    session_is_running,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``coach history``."""
    parser = sub.add_parser(
        "history",
        help="recent sessions, repetitions per leg per day and pain reports",
        description="Show what the journal recorded over the last days.",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=14,
        metavar="N",
        help="how many days back, today included (default 14)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    parser.set_defaults(func=run)


def _session_json(entry: SessionEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "routine": entry.routine_id,
        "started_at": entry.started_at.isoformat(),
        "ended_at": entry.ended_at.isoformat() if entry.ended_at else None,
        "duration_s": entry.duration_s,
        "outcome": entry.outcome.value if entry.outcome else None,
        "running": session_is_running(entry),
        "options": entry.options,
        "note": entry.note,
    }


def _per_day(daily: list[DailyReps]) -> list[dict[str, Any]]:
    by_day: dict[date, dict[str, int]] = defaultdict(dict)
    for item in daily:
        by_day[item.day][item.leg or "unknown"] = item.reps
    return [{"day": day.isoformat(), "reps": legs} for day, legs in sorted(by_day.items())]


def _pain_json(report: PainReport) -> dict[str, Any]:
    return {
        "session_id": report.session_id,
        "at": report.at.isoformat(),
        "exercise": report.exercise_id,
        "leg": report.leg,
        "set": report.set_number,
        "rep": report.rep_number,
        "note": report.note,
    }


def run(args: argparse.Namespace) -> int:
    """Print the history."""
    if args.days < 1:
        raise CoachError("--days must be at least 1")
    path = default_journal_path()
    if path.exists():
        with Journal(path) as journal:
            sessions = journal.recent_sessions(args.days)
            daily = journal.reps_per_day(args.days)
            pains = journal.pain_reports(args.days)
            tz = journal.tz
    else:
        # Nothing recorded yet: say so without creating an empty journal.
        sessions, daily, pains, tz = [], [], [], None
    if args.json:
        print(
            json.dumps(
                {
                    "journal": str(path),
                    "days": args.days,
                    "sessions": [_session_json(s) for s in sessions],
                    "reps_per_day": _per_day(daily),
                    "pain_reports": [_pain_json(p) for p in pains],
                },
                indent=2,
            )
        )
        return 0

    console = Console()
    if not sessions and not daily and not pains:
        console.print(f"No sessions in the last {args.days} days (journal: {path}).")
        return 0

    def local(moment: datetime) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    table = Table(title=f"Sessions, last {args.days} days")
    for column in ("started", "routine", "duration", "outcome"):
        table.add_column(column)
    for entry in sessions:
        duration = "" if entry.duration_s is None else _minutes(entry.duration_s)
        if entry.outcome is not None:
            outcome = entry.outcome.value
        else:
            outcome = "running now" if session_is_running(entry) else "unfinished"
        table.add_row(local(entry.started_at), entry.routine_id, duration, outcome)
    console.print(table)

    reps = Table(title="Repetitions per leg per day")
    rows = _per_day(daily)
    legs = sorted({leg for row in rows for leg in row["reps"]})
    reps.add_column("day")
    for leg in legs:
        reps.add_column(leg, justify="right")
    for row in rows:
        reps.add_row(row["day"], *(str(row["reps"].get(leg, 0)) for leg in legs))
    console.print(reps)

    if pains:
        table = Table(title="Pain reports")
        for column in ("when", "exercise", "leg", "set/rep", "note"):
            table.add_column(column)
        for pain in pains:
            where = f"{pain.set_number or '-'}/{pain.rep_number or '-'}"
            table.add_row(local(pain.at), pain.exercise_id or "", pain.leg or "", where, pain.note)
        console.print(table)
    else:
        console.print("No pain reports.")
    return 0


def _minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"
