"""scripts/eval_listener.py's plumbing: which streams one listener hears in a row."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import eval_listener


def test_each_session_is_heard_by_a_listener_of_its_own_other_streams_in_a_row() -> None:
    kinds = ["cmd", "neg", "session", "session", "cmd", "cmd"]
    streams = [{"id": str(n), "kind": kind} for n, kind in enumerate(kinds)]
    groups = eval_listener.heard_together(streams)
    assert [[s["id"] for s in group] for group in groups] == [["0", "1"], ["2"], ["3"], ["4", "5"]]
