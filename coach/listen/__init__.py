"""Listening: microphone audio in, typed Command events out (offline engines)."""

from __future__ import annotations

from coach.listen.commands import URGENT_COMMANDS, Command, CommandEvent
from coach.listen.listener import Listener

__all__ = ["URGENT_COMMANDS", "Command", "CommandEvent", "Listener"]
