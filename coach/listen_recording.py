"""What the listener heard in a live session, kept for a bug report and replayed offline.

``coach run --record-audio DIR`` writes ``DIR/listen.wav`` (16 kHz, two channels: the
microphone, and the echo reference exactly as the listener was handed it, sample-aligned)
and ``DIR/listen.jsonl`` (one JSON object per line: the sentence the coach was playing
whenever it changed, and every command heard, in the recording's clock).
``coach listen --wav DIR/listen.wav --with-reference`` feeds both channels, the sentences
and the echo-delay moves back through a listener, so a missed or false command can be
reproduced away from the room.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from coach.errors import CoachError
from coach.listen.commands import CommandEvent
from coach.listen.engine import SAMPLE_RATE_HZ

WAV_NAME = "listen.wav"
NOTES_NAME = "listen.jsonl"
MIC_CHANNEL = 0
REFERENCE_CHANNEL = 1


class ListenRecording:
    """Appends microphone + reference blocks and notes; failures stop it, never the session."""

    def __init__(self, folder: Path) -> None:
        import soundfile

        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._wav: Any = soundfile.SoundFile(
                str(folder / WAV_NAME), "w", SAMPLE_RATE_HZ, 2, "PCM_16"
            )
            self._notes: IO[str] = (folder / NOTES_NAME).open("w", encoding="utf-8")
        except (OSError, RuntimeError) as err:
            raise CoachError(f"cannot record the listener's audio in {folder}: {err}") from err
        self.folder = folder
        self.failure: str | None = None
        self._samples = 0
        self._text: str | None = None

    def write(
        self, mic: npt.NDArray[np.int16], reference: npt.NDArray[np.int16], text: str | None
    ) -> None:
        """One block as the listener got it (worker thread)."""
        if self.failure is not None:
            return
        try:
            if text != self._text:
                self._note({"ms": self.recorded_ms, "playing": text})
                self._text = text
            self._wav.write(np.stack([mic, reference], axis=1))
            self._samples += len(mic)
        except (OSError, RuntimeError) as err:  # a full disk: stop recording, keep listening
            self.failure = f"recording stopped: {err}"

    def reference_moved(self) -> None:
        """The echo delay was re-measured: the reference moved before the next block."""
        if self.failure is None:
            try:
                self._note(
                    {"ms": self.recorded_ms, "sample": self._samples, "reference_moved": True}
                )
            except OSError as err:
                self.failure = f"recording stopped: {err}"

    def heard(self, event: CommandEvent, lag_ms: int | None = None) -> None:
        """A command the listener reported; ``lag_ms``: how long after its microphone block
        arrived (the listener's backlog and work: a busy CPU shows here)."""
        if self.failure is None:
            try:
                note: dict[str, Any] = {"ms": self.recorded_ms, "heard": event.to_json()}
                if lag_ms is not None:
                    note["lag_ms"] = lag_ms
                self._note(note)
            except OSError as err:
                self.failure = f"recording stopped: {err}"

    def close(self) -> None:
        """Finish both files (the WAV header gets its length)."""
        for item in (self._wav, self._notes):
            with contextlib.suppress(OSError, RuntimeError):  # a full disk: keep what is there
                item.close()

    @property
    def recorded_ms(self) -> int:
        """How much has been recorded (the recording's clock now)."""
        return self._samples * 1000 // SAMPLE_RATE_HZ

    def _note(self, fields: dict[str, Any]) -> None:
        self._notes.write(json.dumps(fields, ensure_ascii=False) + "\n")
        self._notes.flush()


def read_notes(wav: Path) -> tuple[list[tuple[int, str | None]], set[int]]:
    """What was noted beside a recording: (ms, sentence or None) whenever the sentence
    changed, and the sample numbers before which the reference moved. Empty without notes."""
    notes = wav.with_name(NOTES_NAME)
    changes: list[tuple[int, str | None]] = []
    moves: set[int] = set()
    if not notes.is_file():
        return changes, moves
    with notes.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                fields = json.loads(line)
            except json.JSONDecodeError as err:
                raise CoachError(f"{notes}:{number}: not a JSON object ({err.msg})") from err
            if not isinstance(fields, dict):
                raise CoachError(f"{notes}:{number}: expected a JSON object")
            if "playing" in fields:
                ms, text = fields.get("ms"), fields["playing"]
                if not isinstance(ms, int) or not (text is None or isinstance(text, str)):
                    raise CoachError(f"{notes}:{number}: expected ms (integer) and playing")
                changes.append((ms, text))
            elif fields.get("reference_moved"):
                sample = fields.get("sample")
                if not isinstance(sample, int):
                    raise CoachError(f"{notes}:{number}: expected sample (integer)")
                moves.add(sample)
    return changes, moves
