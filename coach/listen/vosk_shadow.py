"""The shadow recognizer: the early endpoint's second opinion, decoded on a second thread.

A fresh recognizer hears the running utterance as it comes and lists its n-best readings
when asked (VoskEngine.reconsider), so the second opinion is ready at once instead of
being decoded then, while the listener's thread waits. Vosk releases the interpreter lock
while it decodes, and the machines coach runs on have a second core. When the speaker goes
on after the early endpoint, the engine goes on with the closed utterance's shadow
(Shadow.take, VoskEngine.rewind) instead of decoding that utterance again.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from coach.listen.engine import PcmBlock

SHADOW_BATCH = 5
"""Blocks handed to the shadow's thread at a time (100 ms of 20 ms blocks): fewer wake-ups
of its thread; the last few are handed over when the readings are asked for."""


class Heard(NamedTuple):
    """What a shadow's recognizer heard, handed over to go on with (Shadow.take)."""

    recognizer: Any
    """Vosk's recognizer, set to one reading again (no n-best), not finalized."""
    results: list[str]
    """Vosk's results (one reading each) for the utterances its own endpoint closed inside
    the audio, in order."""
    since_endpoint: int
    """Blocks heard after the last of those endpoints (all of them if none)."""


class Shadow:
    """A fresh recognizer set to list n-best readings, fed the running utterance on its
    own thread (``worker``, one thread, so its blocks arrive in order) once a voice is
    heard in it (:meth:`wake`).

    It hears exactly the blocks a fresh recognizer decoding the utterance afterwards
    would, and Vosk's decodes repeat (coach/listen/vosk_view.py), so its readings are the
    same, only ready sooner (tests/test_listen_vosk.py compares them).
    """

    def __init__(
        self,
        recognizer: Callable[[], Any],
        worker: ThreadPoolExecutor,
        audio: list[PcmBlock],
        readings: int,
    ) -> None:
        """``recognizer`` builds a fresh recognizer (on the worker, once it is needed: most
        shadows never decode); ``audio``: what the utterance has heard so far; ``readings``:
        how many readings it lists (Vosk's max alternatives)."""
        self._new_recognizer = recognizer
        self._readings = readings
        self._recognizer: Any = None
        self._worker = worker
        self._dropped = False
        self._finalized = False
        self._awake = False
        self._batch: list[PcmBlock] = list(audio)
        self._results: list[str] = []
        self._since_endpoint = 0

    def feed(self, block: PcmBlock) -> None:
        """Hear the next block of the utterance (queued; returns at once)."""
        self._batch.append(block)
        if self._awake and len(self._batch) >= SHADOW_BATCH:
            self._hand_over()

    def wake(self) -> None:
        """Decode what it has heard so far, then each block as it comes.

        Asleep, it only keeps the blocks: its readings are asked for only after a short
        voice (the early endpoint closes nothing longer), and most of a session is
        quiet, or the coach's echo, which the canceller removes. Decoding everything as
        it came raised the listener's CPU by half (bench_barge_in: RTF 0.091 -> 0.133).
        """
        if not self._awake:
            self._awake = True
            self._hand_over()

    def sleep(self) -> None:
        """Keep the blocks that come without decoding them, until woken (or asked)."""
        self._awake = False

    def drop(self) -> None:
        """Not needed any more: blocks still queued for it are skipped."""
        self._dropped = True

    def readings(self) -> str:
        """Vosk's final result (JSON, with ``alternatives``), once it has heard every block
        fed so far."""
        self._awake = True
        self._hand_over()
        self._finalized = True
        return str(self._worker.submit(self._final_result).result())

    def take(self) -> Heard | None:
        """Its recognizer, once it has heard every block fed so far, set to one reading,
        to go on with (VoskEngine.rewind): the utterance need not be decoded again. None
        if its readings were asked for (Vosk finalized it) or it was dropped. The shadow
        is done with after this."""
        if self._finalized or self._dropped:
            return None
        self._awake = True
        self._hand_over()
        heard = self._worker.submit(self._handed_over).result()  # after every batch
        self._dropped = True
        return heard

    def _hand_over(self) -> None:
        if not self._dropped and self._batch:
            self._worker.submit(self._feed, self._batch)
        self._batch = []

    def _feed(self, blocks: list[PcmBlock]) -> None:
        if self._dropped:
            return
        recognizer = self._built()
        for block in blocks:
            self._since_endpoint += 1
            if recognizer.AcceptWaveform(block.tobytes()):
                # Vosk's own endpoint inside: only the rest counts for the readings; its
                # one reading is kept for a rewind (the n-best setting only shapes results).
                recognizer.SetMaxAlternatives(0)
                self._results.append(recognizer.Result())
                recognizer.SetMaxAlternatives(self._readings)
                self._since_endpoint = 0

    def _handed_over(self) -> Heard:
        """On the worker, after every batch handed to it: the recognizer to go on with."""
        recognizer = self._built()
        recognizer.SetMaxAlternatives(0)
        return Heard(recognizer, self._results, self._since_endpoint)

    def _final_result(self) -> Any:
        return self._built().FinalResult()

    def _built(self) -> Any:
        """The recognizer, built on first use (on the worker's thread)."""
        if self._recognizer is None:
            self._recognizer = self._new_recognizer()
            self._recognizer.SetMaxAlternatives(self._readings)
        return self._recognizer
