"""Test helpers for the journal: a clock the test moves by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class FakeClock:
    """Returns ``now``; tests move it with ``advance``."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 10, 8, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
