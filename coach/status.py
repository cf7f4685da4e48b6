"""The terminal status line of a live session: a rich line on a TTY, log lines otherwise.

Nothing requires looking at it: the session is followed by ear. Without a terminal
(a headless box started by systemd) each meaningful change becomes one log line on
stderr instead of a redrawn line.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from coach.session import SessionStatus, State

SILENT_DBFS = -90.0
"""Input levels below this show as silence."""


def describe(status: SessionStatus) -> str:
    """The status as one plain line (no level meter): what a log line says."""
    where = status.where
    parts = [status.state.value]
    if status.question is not None:
        parts[0] = f"asking ({status.question.value})"
    if where.exercise_name:
        parts.append(where.exercise_name)
    if where.leg is not None:
        parts.append(f"{where.leg.value} leg")
    if where.set_number is not None and where.rep_number is not None:
        total = f"/{status.reps_per_side}" if status.reps_per_side else ""
        parts.append(f"rep {where.rep_number}{total}")
    if status.hold_left_ms is not None:
        parts.append(f"hold {(status.hold_left_ms + 999) // 1000} s")
    if status.pace != 1.0:
        parts.append(f"pace {status.pace:g}")
    if status.last_command:
        parts.append(f"heard {status.last_command}")
    return " | ".join(parts)


def level_meter(level_dbfs: float | None, width: int = 10) -> str:
    """``[#####     ]`` for an input level in dBFS (-60 empty .. 0 full); '' with no input."""
    if level_dbfs is None:
        return ""
    filled = 0 if level_dbfs <= SILENT_DBFS else round(width * (level_dbfs + 60) / 60)
    filled = max(0, min(width, filled))
    return "[" + "#" * filled + " " * (width - filled) + "]"


class StatusLine:
    """Shows a session's status: redrawn in place on a terminal, logged on change otherwise."""

    def __init__(self, stream: TextIO | None = None, *, force_terminal: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._console = Console(file=self._stream, force_terminal=force_terminal)
        self._live: Live | None = None
        self._last_logged = ""
        self.is_terminal = self._console.is_terminal

    def __enter__(self) -> StatusLine:
        if self.is_terminal:
            self._live = Live(Text(""), console=self._console, refresh_per_second=8, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop redrawing (the line disappears; what was logged stays)."""
        if self._live is not None:
            live, self._live = self._live, None
            live.__exit__(None, None, None)

    def update(self, status: SessionStatus, input_dbfs: float | None = None) -> None:
        """Show ``status``; on a terminal with the input level meter."""
        line = describe(status)
        if self._live is not None:
            meter = level_meter(input_dbfs)
            text = Text(line)
            if meter:
                text.append(f"  mic {meter}", style="dim")
            self._live.update(text)
            return
        # Log only what changed in substance: not every hold second or level wiggle.
        key = describe(_without_countdown(status))
        if key != self._last_logged:
            self._last_logged = key
            print(f"coach: {key}", file=self._stream, flush=True)

    def message(self, text: str) -> None:
        """A line that stays (above the live line on a terminal)."""
        if self._live is not None:
            self._live.console.print(text)
        else:
            print(text, file=self._stream, flush=True)


def _without_countdown(status: SessionStatus) -> SessionStatus:
    from dataclasses import replace

    state = status.state if status.state is not State.STARTING else State.RUNNING
    return replace(status, hold_left_ms=None, state=state)
