"""The journal: an append-only SQLite record of sessions, reps, commands and pain reports.

Every event is its own committed transaction (autocommit), in WAL mode with
``synchronous=FULL``: when a call returns, the event is in the write-ahead log and
fsync'd, so neither killing the process (SIGKILL) nor pulling the plug of a small
device loses it. At a few events a minute the fsync per event costs nothing the user
notices; do not call the journal from an audio callback all the same.

Timestamps are ISO-8601 UTC strings with a fixed width (millisecond precision,
``+00:00``), so string order is time order and SQL range queries need no parsing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import psutil

from coach.errors import CoachError
from coach.paths import data_dir

JOURNAL_FILE = "journal.sqlite3"

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime (injected so tests control time)."""


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def default_journal_path() -> Path:
    """``data_dir()/journal.sqlite3``."""
    return data_dir() / JOURNAL_FILE


class Outcome(StrEnum):
    """How a session ended, as stored in ``sessions.outcome``."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    PAIN = "pain"
    INTERRUPTED = "interrupted"
    DEVICE_LOST = "device_lost"
    ERROR = "error"
    NO_ANSWER = "no_answer"
    """Ended safely because nobody answered after a pain report."""
    DOSE_LIMIT = "dose_limit"
    """Not run (or cut short) because today's dose was reached."""
    UNFINISHED = "unfinished"
    """Found open by a later run: the process died without closing it."""


# Migration i takes the database from user_version i to i + 1. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            routine_id TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            outcome TEXT CHECK (outcome IN ({", ".join(repr(o.value) for o in Outcome)})),
            options TEXT NOT NULL DEFAULT '{{}}',
            note TEXT NOT NULL DEFAULT '',
            pid INTEGER
        )""",
        """CREATE TABLE reps (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            exercise_id TEXT NOT NULL,
            leg TEXT,
            set_number INTEGER NOT NULL,
            rep_number INTEGER NOT NULL,
            at TEXT NOT NULL
        )""",
        """CREATE TABLE commands (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            command TEXT NOT NULL,
            phrase TEXT NOT NULL DEFAULT '',
            confidence REAL,
            at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TABLE pain_reports (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            exercise_id TEXT,
            leg TEXT,
            set_number INTEGER,
            rep_number INTEGER,
            at TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX sessions_started_at ON sessions(started_at)",
        "CREATE INDEX reps_at ON reps(at)",
        "CREATE INDEX reps_session ON reps(session_id)",
        "CREATE INDEX commands_session ON commands(session_id)",
        "CREATE INDEX pain_reports_at ON pain_reports(at)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def to_iso(moment: datetime) -> str:
    """The stored form of ``moment``: fixed-width ISO-8601 in UTC."""
    if moment.tzinfo is None:
        raise ValueError("journal timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def from_iso(text: str) -> datetime:
    """Parse a stored timestamp."""
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class SessionEntry:
    """One row of ``sessions``."""

    id: int
    routine_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: Outcome | None
    """None while the session is running (or if its process died and nobody closed it)."""
    options: dict[str, Any]
    note: str
    pid: int | None

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end, None while open."""
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class RepEntry:
    """One completed repetition."""

    session_id: int
    exercise_id: str
    leg: str | None
    set_number: int
    rep_number: int
    at: datetime


@dataclass(frozen=True)
class CommandEntry:
    """One command heard."""

    session_id: int
    command: str
    phrase: str
    confidence: float | None
    at: datetime
    state: str


@dataclass(frozen=True)
class PainReport:
    """The user said it hurts, with where in the routine it happened."""

    session_id: int
    exercise_id: str | None
    leg: str | None
    set_number: int | None
    rep_number: int | None
    at: datetime
    note: str


@dataclass(frozen=True)
class DailyReps:
    """Repetitions completed on one (local) day for one leg."""

    day: date
    leg: str | None
    reps: int


def _local_tz() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC


class Journal:
    """The SQLite journal; open one per process, close it (or use ``with``) at the end."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        clock: Clock = utc_now,
        tz: tzinfo | None = None,
    ) -> None:
        """Open (creating and migrating if needed) the journal at ``path``.

        ``tz`` decides where a "day" starts for the per-day queries (default: the
        system's local time zone), since a dose limit is per day as the user lives it.
        """
        self.path = Path(path) if path is not None else default_journal_path()
        self._clock = clock
        self.tz = tz if tz is not None else _local_tz()
        # The session may record from its runner thread and a listener thread alike.
        self._lock = threading.Lock()
        self._db = self._open()

    # ------------------------------------------------------------------ opening

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CoachError(
                f"cannot create the folder for the journal {self.path}: {err.strerror}"
            ) from err
        db: sqlite3.Connection | None = None
        try:
            # isolation_level=None: autocommit, so each statement is committed on return.
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=5.0, check_same_thread=False
            )
            db.execute("PRAGMA foreign_keys = ON")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL mode (got {mode})")
            db.execute("PRAGMA synchronous = FULL")
            self._migrate(db)
        except sqlite3.Error as err:
            if db is not None:
                db.close()
            raise CoachError(f"cannot open the journal {self.path}: {err}") from err
        except BaseException:
            if db is not None:
                db.close()
            raise
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise CoachError(
                f"the journal {self.path} was written by a newer coach (schema "
                f"{version}, this coach knows {SCHEMA_VERSION}); upgrade coach"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # One transaction per step: a crash mid-migration leaves the old version intact.
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[target - 1]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        """The schema version stored in the file (``PRAGMA user_version``)."""
        return int(self._rows("PRAGMA user_version")[0][0])

    def close(self) -> None:
        """Close the database (everything is already committed)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._lock:
                yield self._db
        except sqlite3.Error as err:
            raise CoachError(f"cannot write to the journal {self.path}: {err}") from err

    def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise CoachError(f"cannot read the journal {self.path}: {err}") from err

    def now(self) -> datetime:
        """The journal's clock (injected in tests)."""
        return self._clock()

    def _now(self, at: datetime | None) -> str:
        return to_iso(at if at is not None else self._clock())

    # ------------------------------------------------------------------ writing

    def start_session(
        self,
        routine_id: str,
        options: Mapping[str, Any] | None = None,
        *,
        at: datetime | None = None,
    ) -> int:
        """Record that a session of ``routine_id`` started; returns its id."""
        with self._writing() as db:
            cursor = db.execute(
                "INSERT INTO sessions (routine_id, started_at, options, pid) VALUES (?, ?, ?, ?)",
                (
                    routine_id,
                    self._now(at),
                    json.dumps(dict(options or {}), default=str),
                    os.getpid(),
                ),
            )
        session_id = cursor.lastrowid
        assert session_id is not None
        return session_id

    def end_session(
        self,
        session_id: int,
        outcome: Outcome | str,
        *,
        note: str = "",
        at: datetime | None = None,
    ) -> None:
        """Record how session ``session_id`` ended."""
        outcome = Outcome(outcome)
        with self._writing() as db:
            db.execute(
                "UPDATE sessions SET ended_at = ?, outcome = ?, note = ? WHERE id = ?",
                (self._now(at), outcome.value, note, session_id),
            )

    def record_rep(
        self,
        session_id: int,
        exercise_id: str,
        leg: str | None,
        set_number: int,
        rep_number: int,
        *,
        at: datetime | None = None,
    ) -> None:
        """Record one completed repetition."""
        with self._writing() as db:
            db.execute(
                "INSERT INTO reps (session_id, exercise_id, leg, set_number, rep_number, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, exercise_id, _leg(leg), set_number, rep_number, self._now(at)),
            )

    def record_command(
        self,
        session_id: int,
        command: str,
        phrase: str = "",
        confidence: float | None = None,
        *,
        state: str = "",
        at: datetime | None = None,
    ) -> None:
        """Record a command heard while the session was in ``state``."""
        with self._writing() as db:
            db.execute(
                "INSERT INTO commands (session_id, command, phrase, confidence, at, state)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, str(command), phrase, confidence, self._now(at), str(state)),
            )

    def record_pain(
        self,
        session_id: int,
        exercise_id: str | None,
        leg: str | None,
        set_number: int | None,
        rep_number: int | None,
        *,
        note: str = "",
        at: datetime | None = None,
    ) -> None:
        """Record a pain report with where in the routine it happened."""
        with self._writing() as db:
            db.execute(
                "INSERT INTO pain_reports"
                " (session_id, exercise_id, leg, set_number, rep_number, at, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_id, exercise_id, _leg(leg), set_number, rep_number, self._now(at), note),
            )

    def close_unfinished(self) -> list[SessionEntry]:
        """Mark sessions left open by a process that died as ``unfinished``; returns them.

        Their end time is their last recorded event. A session whose process is still
        running (another ``coach run`` at the same time) is left alone.
        """
        closed: list[SessionEntry] = []
        for entry in self.unfinished_sessions():
            if session_is_running(entry):
                continue
            [(last,)] = self._rows(
                "SELECT MAX(at) FROM (SELECT at FROM reps WHERE session_id = :id"
                " UNION ALL SELECT at FROM commands WHERE session_id = :id"
                " UNION ALL SELECT at FROM pain_reports WHERE session_id = :id)",
                {"id": entry.id},
            )
            ended_at = last or to_iso(entry.started_at)
            with self._writing() as db:
                db.execute(
                    "UPDATE sessions SET ended_at = ?, outcome = ?, note = ?"
                    " WHERE id = ? AND ended_at IS NULL",
                    (
                        ended_at,
                        Outcome.UNFINISHED.value,
                        "closed by a later run: the process ended without closing it",
                        entry.id,
                    ),
                )
            closed.append(self.session(entry.id))
        return closed

    # ------------------------------------------------------------------ reading

    def session(self, session_id: int) -> SessionEntry:
        """The session ``session_id``."""
        rows = self._rows(f"{_SESSION_SELECT} WHERE id = ?", (session_id,))
        if not rows:
            raise KeyError(session_id)
        return _session(rows[0])

    def unfinished_sessions(self) -> list[SessionEntry]:
        """Sessions with no end recorded (running now, or their process died)."""
        rows = self._rows(f"{_SESSION_SELECT} WHERE ended_at IS NULL ORDER BY started_at")
        return [_session(row) for row in rows]

    def recent_sessions(self, days: int = 14, *, limit: int | None = None) -> list[SessionEntry]:
        """Sessions started in the last ``days`` days (by the user's calendar), newest first."""
        rows = self._rows(
            f"{_SESSION_SELECT} WHERE started_at >= ? ORDER BY started_at DESC, id DESC LIMIT ?",
            (self._days_ago(days), -1 if limit is None else limit),
        )
        return [_session(row) for row in rows]

    def reps(self, session_id: int) -> list[RepEntry]:
        """Repetitions of one session, in order."""
        rows = self._rows(
            "SELECT session_id, exercise_id, leg, set_number, rep_number, at FROM reps"
            " WHERE session_id = ? ORDER BY at, id",
            (session_id,),
        )
        return [RepEntry(r[0], r[1], r[2], r[3], r[4], from_iso(r[5])) for r in rows]

    def commands(self, session_id: int) -> list[CommandEntry]:
        """Commands heard in one session, in order."""
        rows = self._rows(
            "SELECT session_id, command, phrase, confidence, at, state FROM commands"
            " WHERE session_id = ? ORDER BY at, id",
            (session_id,),
        )
        return [CommandEntry(r[0], r[1], r[2], r[3], from_iso(r[4]), r[5]) for r in rows]

    def pain_reports(self, days: int = 14) -> list[PainReport]:
        """Pain reports of the last ``days`` days, newest first."""
        rows = self._rows(
            "SELECT session_id, exercise_id, leg, set_number, rep_number, at, note"
            " FROM pain_reports WHERE at >= ? ORDER BY at DESC, id DESC",
            (self._days_ago(days),),
        )
        return [PainReport(r[0], r[1], r[2], r[3], r[4], from_iso(r[5]), r[6]) for r in rows]

    def reps_by_leg(self, day: date | None = None) -> dict[str | None, int]:
        """Repetitions completed per leg on ``day`` (default today), as recorded."""
        start, end = self._day_bounds(day)
        rows = self._rows(
            "SELECT leg, COUNT(*) FROM reps WHERE at >= ? AND at < ? GROUP BY leg",
            (start, end),
        )
        return {leg: count for leg, count in rows}

    def reps_today(self, leg: str | None, day: date | None = None) -> int:
        """Repetitions recorded for exactly ``leg`` on ``day`` (default today), for dose limits.

        Reps recorded before the leg was known are stored as ``affected``; whether those
        count against a leg is the caller's policy (see ``reps_by_leg``).
        """
        return self.reps_by_leg(day).get(_leg(leg), 0)

    def sessions_today(self, day: date | None = None) -> int:
        """Sessions started on ``day`` (default today)."""
        start, end = self._day_bounds(day)
        rows = self._rows(
            "SELECT COUNT(*) FROM sessions WHERE started_at >= ? AND started_at < ?",
            (start, end),
        )
        return int(rows[0][0])

    def reps_per_day(self, days: int = 14) -> list[DailyReps]:
        """Repetitions per leg per local day over the last ``days`` days, oldest first."""
        rows = self._rows("SELECT leg, at FROM reps WHERE at >= ?", (self._days_ago(days),))
        counts: dict[tuple[date, str | None], int] = defaultdict(int)
        for leg, at in rows:
            counts[(from_iso(at).astimezone(self.tz).date(), leg)] += 1
        return [
            DailyReps(day, leg, n)
            for (day, leg), n in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        ]

    # ------------------------------------------------------------------ days

    def today(self) -> date:
        """The user's current calendar day."""
        return self._clock().astimezone(self.tz).date()

    def _day_bounds(self, day: date | None) -> tuple[str, str]:
        day = day if day is not None else self.today()
        start = datetime.combine(day, time(), tzinfo=self.tz)
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=self.tz)
        return to_iso(start), to_iso(end)

    def _days_ago(self, days: int) -> str:
        """The start of the local day ``days - 1`` days before today (days=1: today)."""
        first = self.today() - timedelta(days=max(days, 1) - 1)
        return to_iso(datetime.combine(first, time(), tzinfo=self.tz))


_SESSION_SELECT = (
    "SELECT id, routine_id, started_at, ended_at, outcome, options, note, pid FROM sessions"
)


def _session(row: Sequence[Any]) -> SessionEntry:
    try:
        options = json.loads(row[5]) if row[5] else {}
    except ValueError:
        options = {}
    return SessionEntry(
        id=row[0],
        routine_id=row[1],
        started_at=from_iso(row[2]),
        ended_at=from_iso(row[3]) if row[3] else None,
        outcome=Outcome(row[4]) if row[4] else None,
        options=options if isinstance(options, dict) else {},
        note=row[6],
        pid=row[7],
    )


def _leg(leg: str | None) -> str | None:
    return None if leg is None else str(leg)


def session_is_running(entry: SessionEntry) -> bool:
    """True if ``entry`` is open and the process that started it is still running."""
    if entry.ended_at is not None or entry.pid is None:
        return False
    try:
        owner = psutil.Process(entry.pid)
        if owner.status() == psutil.STATUS_ZOMBIE:
            return False
        created = float(owner.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    # A reused pid belongs to a process created after the session started.
    return created <= entry.started_at.timestamp() + 1.0


# ---------------------------------------------------------------------- session adapter


class _Where(Protocol):
    @property
    def exercise_id(self) -> str | None: ...
    @property
    def leg(self) -> str | None: ...
    @property
    def set_number(self) -> int | None: ...
    @property
    def rep_number(self) -> int | None: ...


class _Heard(Protocol):
    @property
    def command(self) -> str: ...
    @property
    def phrase(self) -> str: ...
    @property
    def confidence(self) -> float: ...


class SessionLog:
    """One session's view of the journal, shaped like ``coach.session.SessionRecord``.

    The session reports times as ms since it started (its monotonic clock); they are
    stored as the session's start time plus that offset, so a session's events keep
    their true spacing even if the wall clock is adjusted meanwhile.
    """

    def __init__(
        self, journal: Journal, routine_id: str, options: Mapping[str, Any] | None = None
    ) -> None:
        self.journal = journal
        self.started_at = journal.now()
        self.session_id = journal.start_session(routine_id, options, at=self.started_at)

    def _at(self, at_ms: int) -> datetime:
        return self.started_at + timedelta(milliseconds=at_ms)

    def rep_done(self, where: _Where, at_ms: int) -> None:
        """A repetition was completed."""
        self.journal.record_rep(
            self.session_id,
            where.exercise_id or "",
            where.leg,
            where.set_number or 0,
            where.rep_number or 0,
            at=self._at(at_ms),
        )

    def command_heard(self, event: _Heard, state: str, at_ms: int) -> None:
        """A command was heard while the session was in ``state``."""
        self.journal.record_command(
            self.session_id,
            event.command,
            event.phrase,
            event.confidence,
            state=state,
            at=self._at(at_ms),
        )

    def pain_reported(self, where: _Where, at_ms: int) -> None:
        """The user reported pain at ``where``."""
        self.journal.record_pain(
            self.session_id,
            where.exercise_id,
            where.leg,
            where.set_number,
            where.rep_number,
            at=self._at(at_ms),
        )

    def finished(self, outcome: str, reps_by_leg: Mapping[Any, int], note: str) -> None:
        """The session ended (its reps are already recorded one by one)."""
        self.journal.end_session(self.session_id, outcome, note=note)
