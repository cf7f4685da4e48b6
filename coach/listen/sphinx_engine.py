"""The PocketSphinx engine: the English model bundled in its wheel, no download needed.

Utterances are cut by PocketSphinx's own endpointer (WebRTC-style VAD); each one is
searched for the command phrases by keyphrase spotting with a per-command threshold.
(A JSGF grammar of phrases plus filler words was measured to decode at hundreds of
times slower than real time, so it is not used.) Keyword spotting reports only the
phrase, so the judge cannot see other words: this engine is weaker at rejecting
sentences than Vosk; DESIGN.md has its measured figures.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from coach.errors import CoachError
from coach.listen.commands import Command
from coach.listen.engine import SAMPLE_RATE_HZ, Hypothesis, PcmBlock, Word
from coach.listen.vocabulary import Vocabulary

FRAME_MS = 10
"""PocketSphinx feature frames (segment times count these)."""


KWS_THRESHOLDS: dict[Command, float] = {Command.PAIN: 1e-10, Command.STOP: 1e-10}
"""Keyphrase detection thresholds; lower finds more (and false-alarms more)."""
DEFAULT_KWS_THRESHOLD = 1e-5


def _keyphrases(vocabulary: Vocabulary) -> str:
    return "".join(
        f"{phrase} /{KWS_THRESHOLDS.get(command, DEFAULT_KWS_THRESHOLD):g}/\n"
        for command, phrase in vocabulary.all_phrases()
    )


class SphinxEngine:
    """PocketSphinx with a command grammar, one decode per endpointed utterance."""

    name = "pocketsphinx"
    warmup_ms = 0

    def __init__(self, vocabulary: Vocabulary) -> None:
        import pocketsphinx as ps

        if vocabulary.language != "en":
            raise CoachError("PocketSphinx ships only an English model; use --language en")
        config = ps.Config(lm=None, loglevel="FATAL", samprate=SAMPLE_RATE_HZ)
        self._decoder: Any = ps.Decoder(config)
        known = {
            w
            for w in vocabulary.words() | set(vocabulary.garbage)
            if self._decoder.lookup_word(w) is not None
        }
        self.vocabulary, self.dropped_phrases = vocabulary.restricted_to(known)
        if not self.vocabulary.phrases:
            raise CoachError("no command phrase is in the PocketSphinx dictionary")
        self.filler_words = frozenset(self.vocabulary.garbage) | {"<sil>", "[noise]"}
        with tempfile.TemporaryDirectory() as tmp:
            keyfile = Path(tmp) / "keyphrases.txt"
            keyfile.write_text(_keyphrases(self.vocabulary), encoding="utf-8")
            self._decoder.add_kws("coach", str(keyfile))
        self._decoder.activate_search("coach")
        self._endpointer: Any = ps.Endpointer(sample_rate=SAMPLE_RATE_HZ)
        self._frame = self._endpointer.frame_bytes // 2
        self._pending = np.zeros(0, np.int16)
        self._samples = 0
        self._utt_start_samples = 0
        self._in_utterance = False

    @property
    def stream_ms(self) -> int:
        """Audio consumed so far, in ms."""
        return self._samples * 1000 // SAMPLE_RATE_HZ

    def accept(self, pcm: PcmBlock) -> list[Hypothesis]:
        """Feed one block; a final hypothesis when the endpointer closes an utterance."""
        self._samples += int(pcm.size)
        self._pending = np.concatenate([self._pending, pcm])
        out: list[Hypothesis] = []
        while len(self._pending) >= self._frame:
            frame, self._pending = self._pending[: self._frame], self._pending[self._frame :]
            out += self._process(frame.tobytes())
        return out

    def flush(self) -> list[Hypothesis]:
        """Finalize the running utterance."""
        out: list[Hypothesis] = []
        tail = self._endpointer.end_stream(self._pending.tobytes()) if len(self._pending) else None
        self._pending = np.zeros(0, np.int16)
        if tail is not None and self._in_utterance:
            self._decoder.process_raw(tail)
        if self._in_utterance:
            out += self._end()
        return out

    def _process(self, frame: bytes) -> list[Hypothesis]:
        was_speech = self._endpointer.in_speech
        speech = self._endpointer.process(frame)
        out: list[Hypothesis] = []
        if speech is not None:
            if not was_speech or not self._in_utterance:
                self._decoder.start_utt()
                self._in_utterance = True
                self._utt_start_samples = round(self._endpointer.speech_start * SAMPLE_RATE_HZ)
            self._decoder.process_raw(speech)
            if not self._endpointer.in_speech:
                out += self._end()
        return out

    def _end(self) -> list[Hypothesis]:
        self._decoder.end_utt()
        self._in_utterance = False
        logmath = self._decoder.logmath
        offset_ms = self._utt_start_samples * 1000 // SAMPLE_RATE_HZ
        words = tuple(
            Word(
                text=seg.word.strip(),
                start_ms=offset_ms + seg.start_frame * FRAME_MS,
                end_ms=offset_ms + (seg.end_frame + 1) * FRAME_MS,
                confidence=float(min(1.0, logmath.exp(seg.prob))),
            )
            for seg in (self._decoder.seg() or ())
            if seg.word.strip() not in ("<s>", "</s>", "<sil>", "[NOISE]", "(NULL)")
        )
        return [Hypothesis(words, final=True, stream_ms=self.stream_ms)]  # also empty: it ended
