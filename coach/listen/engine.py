"""The small Protocol every recognition engine implements, and what it produces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from coach.listen.vocabulary import Vocabulary

SAMPLE_RATE_HZ = 16_000
"""Every engine takes 16 kHz mono signed 16-bit PCM."""

PcmBlock = NDArray[np.int16]


@dataclass(frozen=True)
class Word:
    """A recognized word; times in ms of the engine's input clock (samples fed so far).

    Partial hypotheses may carry no timing (``start_ms == end_ms == -1``, confidence
    1.0): Vosk 0.3.45 returns no partial words at all when asked for their times.
    """

    text: str
    start_ms: int
    end_ms: int
    confidence: float


@dataclass(frozen=True)
class Hypothesis:
    """What the engine currently believes was said in the running utterance.

    A partial hypothesis may still change; a final one closes the utterance, and is
    reported even with no words (the judge then starts afresh). ``stream_ms`` is how
    much audio the engine had consumed when it produced it.
    """

    words: tuple[Word, ...]
    final: bool
    stream_ms: int

    @property
    def timed(self) -> bool:
        """Whether the words carry start/end times and confidences."""
        return all(w.end_ms >= 0 for w in self.words)

    @property
    def text(self) -> str:
        """The words joined by spaces."""
        return " ".join(w.text for w in self.words)


class Engine(Protocol):
    """A streaming recognizer restricted to a vocabulary (one module per engine)."""

    name: str
    """Short id used on the command line (``--engine NAME``)."""

    vocabulary: Vocabulary
    """The phrases this engine can actually hear (some may be dropped for its model)."""

    filler_words: frozenset[str]
    """Words the engine outputs for speech that is not a command (unknown, garbage)."""

    warmup_ms: int
    """Audio the engine must have heard before a word can end and be recognised (a
    sliding-window engine needs a full window first); 0 for a decoder that starts at once."""

    def accept(self, pcm: PcmBlock) -> list[Hypothesis]:
        """Feed one block of 16 kHz mono int16 PCM; the hypotheses it produced."""
        ...

    def flush(self) -> list[Hypothesis]:
        """End of input: finalize the running utterance."""
        ...
