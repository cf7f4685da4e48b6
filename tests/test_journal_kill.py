"""SIGKILL mid-session loses nothing already recorded, and the next run closes the session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from coach.journal import Journal, Outcome

# The child records a session event by event, reporting each one after the call returns,
# then blocks reading stdin until the test kills it.
CHILD = textwrap.dedent(
    """
    import sys
    from coach.journal import Journal

    journal = Journal()
    session = journal.start_session("glides", {"pace": 1.0})
    print("session", session, flush=True)
    for rep in range(1, {reps} + 1):
        journal.record_rep(session, "seated-slider", "left", 1, rep)
        print("rep", rep, flush=True)
    journal.record_command(session, "PAIN", "ouch", 0.93, state="running")
    journal.record_pain(session, "seated-slider", "left", 1, {reps} + 1, note="sharp")
    print("pain", flush=True)
    sys.stdin.read()
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_mid_session_loses_nothing(tmp_path: Path) -> None:
    reps = 7
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.replace("{reps}", str(reps))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ),
    )
    assert child.stdout is not None
    lines = []
    try:
        for line in child.stdout:
            lines.append(line.split())
            if line.startswith("pain"):
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
    session = int(lines[0][1])
    assert lines[-1] == ["pain"]

    # The killed process never closed anything; everything it reported is on disk.
    with Journal() as journal:
        [open_session] = journal.unfinished_sessions()
        assert open_session.id == session
        assert open_session.pid == child.pid
        assert [r.rep_number for r in journal.reps(session)] == list(range(1, reps + 1))
        assert [c.command for c in journal.commands(session)] == ["PAIN"]
        [pain] = journal.pain_reports()
        assert (pain.session_id, pain.rep_number, pain.note) == (session, reps + 1, "sharp")

        # The next run notices and closes it at its last event.
        [closed] = journal.close_unfinished()
        assert closed.id == session
        assert closed.outcome is Outcome.UNFINISHED
        assert closed.ended_at == pain.at
        assert journal.unfinished_sessions() == []


BUSY_CHILD = textwrap.dedent(
    """
    from coach.journal import Journal

    journal = Journal()
    session = journal.start_session("glides")
    print("session", session, flush=True)
    rep = 0
    while True:
        rep += 1
        journal.record_rep(session, "seated-slider", "right", 1, rep)
        print("rep", rep, flush=True)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_while_writing_keeps_every_reported_event_and_a_sound_file() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BUSY_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    session = -1
    reported = 0
    try:
        for line in child.stdout:
            kind, number = line.split()
            if kind == "session":
                session = int(number)
            else:
                reported = int(number)
            if reported == 40:
                break
    finally:
        # Killed while it keeps writing: the kill lands at an arbitrary point of a commit.
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert reported == 40, child.stderr.read() if child.stderr else ""

    with Journal() as journal:
        assert journal._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        numbers = [r.rep_number for r in journal.reps(session)]
        # Every rep the child saw committed is there; at most the one in flight is lost.
        assert numbers[:reported] == list(range(1, reported + 1))
        assert numbers == list(range(1, len(numbers) + 1))
        assert [s.outcome for s in journal.close_unfinished()] == [Outcome.UNFINISHED]
