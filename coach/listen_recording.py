"""What the listener heard in a live session, kept for a bug report and replayed offline.

``coach run --record-audio DIR`` writes ``DIR/listen.wav`` (16 kHz, two channels: the
microphone, and the echo reference exactly as the listener was handed it, sample-aligned)
and ``DIR/listen.jsonl`` (one JSON object per line: the sentence the coach was playing
whenever it changed, every command heard, and what the listener was told about the echo:
speaker gaps and echo-delay moves, in the recording's clock).
``coach listen --wav DIR/listen.wav --with-reference`` feeds both channels, the sentences
and those echo notes back through a listener, so a missed or false command can be
reproduced away from the room.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from coach.errors import CoachError
from coach.listen.commands import CommandEvent
from coach.listen.engine import SAMPLE_RATE_HZ

REFERENCE_MOVED = "reference_moved"
SPEAKER_GAP = "speaker_gap"
GAP_MEASURED = "gap_measured"
ECHO_NOTES = (REFERENCE_MOVED, SPEAKER_GAP, GAP_MEASURED)
"""What the live session tells the listener about the echo, noted where it happened."""


@dataclass(frozen=True)
class EchoChange:
    """One of ``ECHO_NOTES``, told the listener before recorded sample ``sample``."""

    sample: int
    kind: str
    correction: int | None = None
    """For a move: by how many samples of the played stream (None in older recordings)."""


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

    def reference_moved(self, correction: int | None = None) -> None:
        """The echo delay was re-measured: the reference moved (by ``correction`` samples of
        the played stream) before the next block."""
        extra = {} if correction is None else {"correction": correction}
        self._echo_note(REFERENCE_MOVED, extra)

    def speaker_gap(self) -> None:
        """The speaker fell behind before the next block (``Listener.speaker_gap``)."""
        self._echo_note(SPEAKER_GAP)

    def gap_measured(self) -> None:
        """The echo delay after a speaker gap was measured unmoved before the next block
        (``Listener.gap_measured``)."""
        self._echo_note(GAP_MEASURED)

    def _echo_note(self, kind: str, extra: dict[str, Any] | None = None) -> None:
        if self.failure is None:
            try:
                self._note({"ms": self.recorded_ms, "sample": self._samples, kind: True,
                            **(extra or {})})
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


def read_notes(wav: Path) -> tuple[list[tuple[int, str | None]], list[EchoChange]]:
    """What was noted beside a recording: (ms, sentence or None) whenever the sentence
    changed, and what the listener was told about the echo, in order. Empty without notes."""
    notes = wav.with_name(NOTES_NAME)
    changes: list[tuple[int, str | None]] = []
    echo: list[EchoChange] = []
    if not notes.is_file():
        return changes, echo
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
                continue
            kind = next((k for k in ECHO_NOTES if fields.get(k)), None)
            if kind is None:
                continue
            sample, correction = fields.get("sample"), fields.get("correction")
            if not isinstance(sample, int):
                raise CoachError(f"{notes}:{number}: expected sample (integer)")
            if correction is not None and not isinstance(correction, int):
                raise CoachError(f"{notes}:{number}: expected correction (integer)")
            echo.append(EchoChange(sample, kind, correction))
    return changes, echo
