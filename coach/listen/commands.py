"""What a listener can hear: the Command vocabulary and the CommandEvent it emits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Command(StrEnum):
    """A spoken command, independent of language and phrase."""

    STOP = "STOP"
    PAIN = "PAIN"
    NEXT = "NEXT"
    SKIP = "SKIP"
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    REPEAT = "REPEAT"
    SLOWER = "SLOWER"
    FASTER = "FASTER"
    HELP = "HELP"
    # Answers the coach needs after PAIN ("smaller or stop?") and at the end of a set.
    GENTLER = "GENTLER"
    END = "END"
    YES = "YES"
    NO = "NO"


URGENT_COMMANDS: frozenset[Command] = frozenset({Command.PAIN, Command.STOP})
"""Commands that must never be missed: they preempt everything in a session."""

MOVING_ON_COMMANDS: frozenset[Command] = frozenset({Command.NEXT, Command.SKIP})
"""Commands that take the session on to what comes next: heard in place of a STOP, they
move on a person who asked to stop (see Listener._second_opinion)."""


@dataclass(frozen=True)
class CommandEvent:
    """A command heard in the input stream.

    ``word_end_ms`` is when the spoken phrase ended and ``detected_ms`` the stream
    position when the event was emitted, both in the input stream's clock (samples
    fed to the listener so far, in milliseconds). ``confidence`` is in [0, 1].
    """

    command: Command
    phrase: str
    confidence: float
    word_end_ms: int
    detected_ms: int

    @property
    def latency_ms(self) -> int:
        """How long after the end of the phrase the event was emitted."""
        return self.detected_ms - self.word_end_ms

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``coach listen --json`` prints for this event."""
        return {
            "command": self.command.value,
            "phrase": self.phrase,
            "confidence": round(self.confidence, 3),
            "word_end_ms": self.word_end_ms,
            "detected_ms": self.detected_ms,
        }
