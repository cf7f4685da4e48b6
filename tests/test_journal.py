"""The journal: schema and migrations, recording, per-day queries, unopenable files."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from journal_support import FakeClock

from coach.cli import main
from coach.errors import CoachError
from coach.journal import (
    SCHEMA_VERSION,
    Journal,
    Outcome,
    SessionLog,
    default_journal_path,
    from_iso,
    to_iso,
)
from coach.timeline import Leg


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal(tmp_path: Path, clock: FakeClock) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite3", clock=clock, tz=UTC) as opened:
        yield opened


def test_new_journal_is_wal_versioned_and_in_the_data_dir(clock: FakeClock) -> None:
    with Journal(clock=clock) as journal:
        assert journal.path == default_journal_path()
        assert journal.path.parent.name == "data"  # COACH_DATA_DIR from conftest
        assert journal.schema_version == SCHEMA_VERSION
        db = sqlite3.connect(journal.path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"sessions", "reps", "commands", "pain_reports"} <= tables
        db.close()


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path, clock=clock) as journal:
        session = journal.start_session("glides")
    with Journal(path, clock=clock) as journal:
        assert journal.schema_version == SCHEMA_VERSION
        assert journal.session(session).routine_id == "glides"


def test_journal_from_a_newer_coach_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "j.sqlite3"
    Journal(path, clock=clock).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(CoachError, match="newer coach"):
        Journal(path, clock=clock)


def test_a_whole_session_is_recorded(journal: Journal, clock: FakeClock) -> None:
    session = journal.start_session("sciatic-glides", {"pace": 0.8, "leg": "left"})
    clock.advance(seconds=30)
    journal.record_rep(session, "seated-slider", "left", 1, 1)
    clock.advance(seconds=5)
    journal.record_command(session, "NEXT", "next one", 0.87, state="running")
    clock.advance(seconds=5)
    journal.record_pain(session, "seated-slider", "left", 1, 2, note="sharp")
    clock.advance(seconds=1)
    journal.end_session(session, Outcome.PAIN, note="second pain")

    entry = journal.session(session)
    assert entry.outcome is Outcome.PAIN
    assert entry.options == {"pace": 0.8, "leg": "left"}
    assert entry.duration_s == 41.0
    assert entry.note == "second pain"
    [rep] = journal.reps(session)
    assert (rep.exercise_id, rep.leg, rep.set_number, rep.rep_number) == (
        "seated-slider", "left", 1, 1)
    assert rep.at == datetime(2026, 3, 10, 8, 0, 30, tzinfo=UTC)
    [heard] = journal.commands(session)
    assert (heard.command, heard.phrase, heard.confidence, heard.state) == (
        "NEXT", "next one", 0.87, "running")
    [pain] = journal.pain_reports()
    assert (pain.exercise_id, pain.leg, pain.rep_number, pain.note) == (
        "seated-slider", "left", 2, "sharp")
    assert journal.unfinished_sessions() == []


def test_timestamps_are_fixed_width_utc_iso(journal: Journal) -> None:
    stamp = to_iso(datetime(2026, 3, 10, 9, 0, tzinfo=timezone(timedelta(hours=1))))
    assert stamp == "2026-03-10T08:00:00.000+00:00"
    assert from_iso(stamp) == datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        to_iso(datetime(2026, 3, 10))
    session = journal.start_session("glides")
    raw = sqlite3.connect(journal.path).execute(
        "SELECT started_at FROM sessions WHERE id = ?", (session,)).fetchone()[0]
    assert raw == "2026-03-10T08:00:00.000+00:00"


def test_bad_outcome_is_refused(journal: Journal) -> None:
    session = journal.start_session("glides")
    with pytest.raises(ValueError, match="'bored'"):
        journal.end_session(session, "bored")


def test_reps_per_leg_per_day_and_sessions_today(journal: Journal, clock: FakeClock) -> None:
    day1 = journal.start_session("glides")
    for rep in range(1, 4):
        journal.record_rep(day1, "slider", "left", 1, rep)
    journal.record_rep(day1, "slider", "right", 1, 1)
    journal.end_session(day1, "completed")
    clock.advance(days=1)
    day2 = journal.start_session("glides")
    journal.record_rep(day2, "slider", Leg.LEFT, 1, 1)
    journal.record_rep(day2, "slider", Leg.AFFECTED, 1, 2)
    journal.start_session("glides")  # a second session the same day

    assert journal.today() == date(2026, 3, 11)
    assert journal.reps_today("left") == 1
    assert journal.reps_today(Leg.LEFT, date(2026, 3, 10)) == 3
    assert journal.reps_today("right", date(2026, 3, 10)) == 1
    assert journal.reps_today("right") == 0
    assert journal.reps_by_leg() == {"left": 1, "affected": 1}
    assert journal.sessions_today() == 2
    assert journal.sessions_today(date(2026, 3, 10)) == 1
    per_day = [(d.day.isoformat(), d.leg, d.reps) for d in journal.reps_per_day(days=7)]
    assert per_day == [
        ("2026-03-10", "left", 3), ("2026-03-10", "right", 1),
        ("2026-03-11", "affected", 1), ("2026-03-11", "left", 1),
    ]
    assert [d.day for d in journal.reps_per_day(days=1)] == [date(2026, 3, 11)] * 2


def test_days_follow_the_users_time_zone(tmp_path: Path) -> None:
    # 23:30 in New York on March 10 is already March 11 in UTC.
    new_york = timezone(timedelta(hours=-5))
    clock = FakeClock(datetime(2026, 3, 11, 4, 30, tzinfo=UTC))
    with Journal(tmp_path / "j.sqlite3", clock=clock, tz=new_york) as journal:
        session = journal.start_session("glides")
        journal.record_rep(session, "slider", "left", 1, 1)
        assert journal.today() == date(2026, 3, 10)
        assert journal.reps_today("left") == 1
        clock.advance(hours=1)  # 00:30 in New York: a new day
        assert journal.reps_today("left") == 0
        assert journal.reps_today("left", date(2026, 3, 10)) == 1


def test_recent_sessions_and_pain_reports_look_back_n_days(
    journal: Journal, clock: FakeClock
) -> None:
    old = journal.start_session("old")
    journal.record_pain(old, "slider", "left", 1, 1)
    clock.advance(days=10)
    new = journal.start_session("new")
    journal.record_pain(new, None, None, None, None, note="before starting")
    assert [s.routine_id for s in journal.recent_sessions(days=3)] == ["new"]
    assert [s.routine_id for s in journal.recent_sessions(days=11)] == ["new", "old"]
    assert [s.routine_id for s in journal.recent_sessions(days=11, limit=1)] == ["new"]
    assert [p.session_id for p in journal.pain_reports(days=3)] == [new]
    assert [p.session_id for p in journal.pain_reports(days=30)] == [new, old]


def test_unfinished_session_of_a_dead_process_is_closed_at_its_last_event(
    journal: Journal, clock: FakeClock
) -> None:
    session = journal.start_session("glides")
    clock.advance(seconds=20)
    journal.record_rep(session, "slider", "left", 1, 1)
    # Pretend the session belonged to a process that no longer exists.
    db = sqlite3.connect(journal.path)
    db.execute("UPDATE sessions SET pid = 2147483646 WHERE id = ?", (session,))
    db.commit()
    db.close()
    clock.advance(hours=5)
    assert [s.id for s in journal.unfinished_sessions()] == [session]
    [closed] = journal.close_unfinished()
    assert closed.outcome is Outcome.UNFINISHED
    assert closed.ended_at == datetime(2026, 3, 10, 8, 0, 20, tzinfo=UTC)
    assert journal.unfinished_sessions() == []
    assert journal.close_unfinished() == []


def test_a_session_whose_process_is_alive_is_not_closed(tmp_path: Path) -> None:
    # Real clock: liveness compares the owner's start time with the session's.
    with Journal(tmp_path / "j.sqlite3") as journal:
        session = journal.start_session("glides")
        assert journal.close_unfinished() == []
        assert [s.id for s in journal.unfinished_sessions()] == [session]


def test_events_from_several_threads_are_all_recorded(journal: Journal) -> None:
    session = journal.start_session("glides")

    def record(leg: str) -> None:
        for rep in range(1, 26):
            journal.record_rep(session, "slider", leg, 1, rep)

    threads = [threading.Thread(target=record, args=(leg,)) for leg in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert journal.reps_by_leg() == {"left": 25, "right": 25}


def test_session_log_adapts_the_session_records(journal: Journal, clock: FakeClock) -> None:
    session_module = pytest.importorskip("coach.session")
    where_type, state, session_outcome = (
        session_module.Where, session_module.State, session_module.Outcome)
    heard = session_module.CommandEvent(
        command="PAIN", phrase="ouch", confidence=0.9, word_end_ms=100, detected_ms=250)
    log = SessionLog(journal, "glides", {"pace": 1.0})
    where = where_type(exercise_id="slider", exercise_index=0, leg=Leg.RIGHT, set_number=1,
                       rep_number=2)
    log.rep_done(where, 12_000)
    log.command_heard(heard, state.RUNNING, 15_500)
    log.pain_reported(where, 15_600)
    log.finished(session_outcome.PAIN, {Leg.RIGHT: 1}, "stopped after pain")
    [rep] = journal.reps(log.session_id)
    assert rep.at == clock.now + timedelta(seconds=12)
    assert rep.leg == "right"
    [command] = journal.commands(log.session_id)
    assert (command.command, command.state) == ("PAIN", "running")
    entry = journal.session(log.session_id)
    assert entry.outcome is Outcome.PAIN and entry.note == "stopped after pain"


def test_unopenable_journal_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(CoachError, match=str(blocker)):
        Journal(blocker / "journal.sqlite3")
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CoachError, match=f"cannot open the journal {corrupt}"):
        Journal(corrupt)
    with pytest.raises(CoachError, match="cannot open the journal"):
        Journal(tmp_path)  # a folder, not a file


def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        probe = folder / "probe"
        try:
            probe.write_text("x")
        except PermissionError:
            pass
        else:
            pytest.skip("running as root: permissions do not stop writes here")
        with pytest.raises(CoachError, match=str(folder / "journal.sqlite3")):
            Journal(folder / "journal.sqlite3")
    finally:
        folder.chmod(0o700)


def test_disk_full_while_writing_names_the_path(journal: Journal) -> None:
    session = journal.start_session("glides")
    # Cap the file at its current size: the next pages cannot be allocated, as on a full disk.
    pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
    journal._db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(CoachError, match=f"cannot write to the journal {journal.path}"):
        for rep in range(10_000):
            journal.record_rep(session, "slider-" + "x" * 200, "left", 1, rep)


# --------------------------------------------------------------------------- coach history


def test_history_json(clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    with Journal() as journal:
        session = journal.start_session("glides", {"pace": 1.0}, at=now - timedelta(minutes=10))
        journal.record_rep(session, "slider", "left", 1, 1, at=now - timedelta(minutes=9))
        journal.record_rep(session, "slider", "right", 1, 1, at=now - timedelta(minutes=8))
        journal.record_pain(session, "slider", "right", 1, 2, at=now - timedelta(minutes=7))
        journal.end_session(session, "pain", at=now - timedelta(minutes=6))
    assert main(["history", "--json", "--days", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    [entry] = report["sessions"]
    assert entry["routine"] == "glides"
    assert entry["outcome"] == "pain"
    assert entry["duration_s"] == pytest.approx(240.0)
    assert entry["running"] is False
    [day] = report["reps_per_day"]
    assert day["reps"] == {"left": 1, "right": 1}
    [pain] = report["pain_reports"]
    assert (pain["exercise"], pain["leg"], pain["rep"]) == ("slider", "right", 2)

    assert main(["history"]) == 0
    text = capsys.readouterr().out
    assert "glides" in text and "pain" in text and "4 min 00 s" in text


def test_history_without_a_journal_creates_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history"]) == 0
    assert "No sessions" in capsys.readouterr().out
    assert main(["history", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sessions"] == []
    assert not default_journal_path().exists()
    assert main(["history", "--days", "0"]) == 2
    assert "coach: --days must be at least 1" in capsys.readouterr().err
