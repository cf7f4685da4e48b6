"""User-facing errors: a clear message and an exit status, never a traceback."""

from __future__ import annotations


class CoachError(Exception):
    """A problem the user can fix (bad input, missing model, no device).

    The command line prints ``message`` on stderr and exits with ``exit_code``.
    """

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
