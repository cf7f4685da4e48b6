"""The Vosk (Kaldi) engine: grammar-restricted streaming recognition with word times."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from coach.errors import CoachError
from coach.listen.commands import MOVING_ON_COMMANDS, Command
from coach.listen.engine import SAMPLE_RATE_HZ, Hypothesis, PcmBlock, Word
from coach.listen.judge import DEFAULT_THRESHOLDS, Threshold
from coach.listen.lexicon import Lexicon, model_lexicon
from coach.listen.vocabulary import Vocabulary
from coach.listen.vosk_shadow import Shadow
from coach.listen.vosk_view import ViewError, model_view, views_root

_log = logging.getLogger(__name__)

UNKNOWN_WORDS = ("[unk]", "<UNK>", "<unk>")
"""Unknown-word symbols, in the order Vosk models spell them."""

PARTIAL_EVERY_MS = 60
"""How often (in audio) the engine asks Vosk for a partial result."""

REWIND_MAX_MS = 15_000
"""Longest utterance kept to be decoded again after an early endpoint."""

SHADOW_AFTER_MS = 1000
"""An utterance longer than this is decoded for a second opinion as it comes, once a short
voice is heard in it (VoskEngine.voice_heard); a shorter one only when asked."""

DITHER_RMS = 1.0
"""Noise added to each sample before Vosk hears it (int16 steps; Kaldi's default dither).
Kaldi's own, which the model view turns off (coach/listen/vosk_view.py), draws on the
process-wide ``rand()``, so no decode repeated; this one comes from the engine's own
generator, seeded alike for every engine, so the same audio gives the same results."""

DITHER_SEED = 0
"""Every engine's dither starts from this seed: the same stream, the same noise."""

RECONSIDER_READINGS = 3
"""Readings (n-best) a second opinion lists: the person's word was a close second."""

MOVING_ON_MIN_CONFIDENCE = 0.9
"""Vosk's word confidence (its lattice's posterior) NEXT and SKIP need, instead of the
judge's 0.8. Over the coach's voice, Vosk took the user's "멈춰" (stop) for "넘겨" (skip)
or "넘어가" (next) at 0.81-0.88 in 6 of bench_barge_in's 9 such cases (the other 3 at
1.0), and in 8 of 10 with ``--engines vosk-moving-on``, where the user also says those two
words: all 198 of them it heard (181 of 200 over the coach, 17 of 17 with no coach) came
out at 1.0. On eval_listener's synthetic set, one "멈춰" was taken for SKIP at 0.82, and
every NEXT and SKIP heard as itself was at 0.92-1.0. With this bar, bench_barge_in gave 6
false moving-on commands fewer, vosk-moving-on 8 and eval_listener 1, all with the same
detections, and 15 recorded live sessions replayed to the same commands. A SKIP in place
of a STOP moves on a person who asked to stop; a missed SKIP is only said again."""

JUDGE_THRESHOLDS: dict[Command, Threshold] = {
    **DEFAULT_THRESHOLDS,
    **{
        command: replace(DEFAULT_THRESHOLDS[command], min_confidence=MOVING_ON_MIN_CONFIDENCE)
        for command in MOVING_ON_COMMANDS
    },
}
"""The judge's thresholds for Vosk's confidences (Listener asks the engine for them)."""


def check_model_dir(path: Path) -> None:
    """Raise CoachError naming the folder and what is missing, before Vosk sees it.

    ``vosk.Model`` on an incomplete folder logs from C++ and may abort; checking the
    files first keeps the error a one-line message.
    """
    if not path.is_dir():
        raise CoachError(f"Vosk model folder not found: {path}")
    missing: list[str] = []
    empty: list[str] = []

    def need(relative: str) -> None:
        file = path / relative
        if not file.is_file():
            missing.append(relative)
        elif file.stat().st_size == 0:
            empty.append(relative)

    need("am/final.mdl")
    need("conf/mfcc.conf")
    graph = path / "graph"
    if (graph / "HCLG.fst").is_file():
        need("graph/HCLG.fst")
        need("graph/words.txt")
    elif (graph / "HCLr.fst").is_file() or (graph / "Gr.fst").is_file():
        need("graph/HCLr.fst")
        need("graph/Gr.fst")
    else:
        missing.append("graph/HCLG.fst (or graph/HCLr.fst + graph/Gr.fst)")
    if missing or empty:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if empty:
            parts.append("empty (corrupt) " + ", ".join(empty))
        raise CoachError(
            f"Vosk model in {path} is incomplete: {'; '.join(parts)}; "
            "reinstall it (coach models install NAME) or point --model at a complete folder"
        )


class VoskModel:
    """A Vosk model folder, loaded when a grammar asks for it (large: load once, share
    between engines)."""

    def __init__(self, path: Path) -> None:
        check_model_dir(path)
        self.path = path
        self._words: Lexicon | None = None
        self._words_read = False
        self._loaded: list[tuple[frozenset[str], Any]] = []
        """Loaded models and the words each one's view keeps."""

    def load(self, words: Collection[str]) -> Any:
        """The ``vosk.Model`` for recognizers whose grammars use only ``words``: loaded
        through a view (coach/listen/vosk_view.py) that keeps only those words of the
        model's table and graph and turns Kaldi's dither off. Loaded once per word set; a set that
        an earlier load kept shares it."""
        wanted = frozenset(words)
        for kept, model in self._loaded:
            if wanted <= kept:
                return model
        import vosk

        vosk.SetLogLevel(-1)
        try:
            folder = model_view(self.path, wanted, self.words, views_root())
        except ViewError as err:
            _log.warning("%s; loading the model's own folder (more memory)", err)
            folder = self.path
        try:
            model = vosk.Model(str(folder))
        except Exception as err:
            raise CoachError(f"Vosk could not load the model in {self.path}: {err}") from err
        self._loaded.append((wanted, model))
        return model

    @property
    def words(self) -> Lexicon | None:
        """The model's vocabulary (from words.txt or Gr.fst), or None when it does not say."""
        if not self._words_read:
            self._words = model_lexicon(self.path)
            self._words_read = True
        return self._words

    @property
    def supports_grammar(self) -> bool:
        """Whether the graph can be restricted at run time (lookahead HCLr + Gr)."""
        return (self.path / "graph" / "Gr.fst").is_file()

    def unknown_word(self) -> str | None:
        """The model's symbol for unknown speech, if it has one."""
        words = self.words
        if words is None:
            return "[unk]"
        return next((w for w in UNKNOWN_WORDS if w in words), None)


@dataclass
class _Closed:
    """The utterance VoskEngine.endpoint closed: where it started (samples), its audio and
    the shadow that heard it."""

    start: int
    audio: list[PcmBlock]
    shadow: Shadow | None


class VoskEngine:
    """Vosk restricted to the command phrases, filler words and the unknown word."""

    name = "vosk"
    warmup_ms = 0
    judge_thresholds = JUDGE_THRESHOLDS

    def __init__(self, model: VoskModel, vocabulary: Vocabulary) -> None:

        known = model.words
        if known is not None:
            vocabulary, self.dropped_phrases = vocabulary.restricted_to(known)
        else:
            self.dropped_phrases = []
        if not vocabulary.phrases:
            raise CoachError(
                f"none of the {vocabulary.language!r} command phrases is in the vocabulary "
                f"of the Vosk model in {model.path}; is it a model for that language?"
            )
        self.vocabulary = vocabulary
        unknown = model.unknown_word()
        fillers = set(vocabulary.garbage) | set(UNKNOWN_WORDS)
        self.filler_words = frozenset(fillers)
        grammar = [p for _, p in vocabulary.all_phrases()] + list(vocabulary.garbage)
        if unknown is not None:
            grammar.append(unknown)
        self._grammar = json.dumps(grammar, ensure_ascii=False)
        self._vosk_model = model.load({word for phrase in grammar for word in phrase.split()})
        self._dither = np.random.default_rng(DITHER_SEED)
        self._recognizer: Any = self._new_recognizer()
        self._samples = 0
        self._partial_due = 0
        self._offset_ms = 0
        """Where the current recognizer started, in the stream (its times start at 0)."""
        self._shadow_worker = ThreadPoolExecutor(1, thread_name_prefix="vosk-shadow")
        self._shadow: Shadow | None = None
        self._utterance_start = 0
        self._utterance_audio: list[PcmBlock] | None = None
        """Audio of the running utterance (None once too long to decode again)."""
        self._begin_utterance(0, [])
        self._closed: _Closed | None = None
        """The utterance endpoint() closed."""

    def _new_recognizer(self) -> Any:
        import vosk

        recognizer = vosk.KaldiRecognizer(self._vosk_model, SAMPLE_RATE_HZ, self._grammar)
        recognizer.SetWords(True)
        # No SetPartialWords: with it, Vosk 0.3.45 returns empty partials on grammars.
        return recognizer

    @property
    def stream_ms(self) -> int:
        """Audio consumed so far, in ms."""
        return self._samples * 1000 // SAMPLE_RATE_HZ

    def accept(self, pcm: PcmBlock) -> list[Hypothesis]:
        """Feed one block; a final hypothesis when Vosk closes an utterance, else a partial."""
        if pcm.size == 0:
            return []
        pcm = self._dithered(pcm)
        self._samples += int(pcm.size)
        if self._utterance_audio is not None:
            self._utterance_audio.append(pcm)  # a new array: _dithered made it
            if self._shadow is not None:
                self._shadow.feed(pcm)
            if len(self._utterance_audio) * len(pcm) > REWIND_MAX_MS * SAMPLE_RATE_HZ // 1000:
                self._utterance_audio = None
                self._drop_shadow()
        if self._recognizer.AcceptWaveform(pcm.tobytes()):
            self._new_utterance()
            self._close(None)
            return self._final(self._recognizer.Result())
        # The decoder advances in chunks of a few hundred ms; asking for the partial
        # after every 20 ms block only costs CPU.
        if self._samples < self._partial_due:
            return []
        self._partial_due = self._samples + PARTIAL_EVERY_MS * SAMPLE_RATE_HZ // 1000
        text = str(json.loads(self._recognizer.PartialResult()).get("partial", ""))
        words = tuple(Word(w, -1, -1, 1.0) for w in text.split())
        return [Hypothesis(words, final=False, stream_ms=self.stream_ms)] if words else []

    def _dithered(self, pcm: PcmBlock) -> PcmBlock:
        """``pcm`` with the engine's dither added (a new array): see ``DITHER_RMS``."""
        noise = np.rint(self._dither.standard_normal(pcm.size) * DITHER_RMS)
        return np.clip(pcm + noise, -32768, 32767).astype(np.int16)

    def flush(self) -> list[Hypothesis]:
        """Finalize the running utterance."""
        self._new_utterance()
        self._close(None)
        return self._final(self._recognizer.FinalResult())

    def endpoint(self) -> list[Hypothesis]:
        """Close the running utterance now (the listener's voice activity saw it end).

        Vosk finalizes without waiting for the audio its acoustic model would look
        ahead at, so the final result is ready at once; the recognizer then starts a
        new utterance. :meth:`rewind` undoes the cut if the speaker went on.
        """
        audio = self._utterance_audio
        shadow, self._shadow = self._shadow, None
        self._close(None if audio is None else _Closed(self._utterance_start, audio, shadow))
        self._new_utterance()
        return self._final(self._recognizer.FinalResult())

    def reconsider(self) -> list[Hypothesis]:
        """The readings of the utterance :meth:`endpoint` just closed, best first.

        A fresh recognizer (the running one is not touched, so :meth:`rewind` still
        works) that heard the closed utterance lists its ``RECONSIDER_READINGS`` best
        readings (Vosk's n-best). Each word's confidence is its reading's likelihood
        relative to the best reading's: 1.0 for the best, exp(-d) for one whose score is
        d lower. See Listener._second_opinion.

        That recognizer is the closed utterance's :class:`Shadow`: it heard the utterance
        as it came, on a thread of its own. Decoding it here instead took up to 210 ms
        (4.4 s of audio since the coach's sentence began), and that wait was the whole of
        the listener's lag at the slowest PAINs of a traced bench_live run (115-239 ms
        behind the microphone, where the PAIN came from these readings).
        """
        if self._closed is None or self._closed.shadow is None:
            return []
        readings = json.loads(self._closed.shadow.readings()).get("alternatives", [])
        if not readings:
            return []
        best = max(float(r.get("confidence", 0.0)) for r in readings)
        offset = self._closed.start * 1000 // SAMPLE_RATE_HZ
        out: list[Hypothesis] = []
        for reading in readings:
            likelihood = math.exp(float(reading.get("confidence", 0.0)) - best)
            words = tuple(
                replace(word, confidence=likelihood)
                for word in self._words(reading.get("result", []), offset)
            )
            if words:
                out.append(Hypothesis(words, final=True, stream_ms=self.stream_ms))
        return out

    def restart(self) -> list[Hypothesis]:
        """Finish the running utterance and go on with a fresh recognizer (about 1 ms to
        build), which has not adapted to anything heard so far (see Listener._fresh_start)."""
        out = self._final(self._recognizer.FinalResult())
        self._recognizer = self._new_recognizer()
        self._offset_ms = self.stream_ms
        self._new_utterance()
        self._close(None)
        return out

    def voice_heard(self, short: bool) -> None:
        """The listener hears a voice, ``short`` enough for its early endpoint to close.

        If the running utterance is already longer than ``SHADOW_AFTER_MS`` (the coach's
        echo keeps Vosk from closing it), its :class:`Shadow` then decodes, so its
        readings are ready when the early endpoint asks for them; a shorter one is
        decoded when asked (a second of audio took 25-50 ms in traced bench_live runs).
        A longer voice will not be closed early: the shadow sleeps until the next short
        one (or until asked)."""
        if self._shadow is None:
            return
        if not short:
            self._shadow.sleep()
        elif self._samples - self._utterance_start > SHADOW_AFTER_MS * SAMPLE_RATE_HZ // 1000:
            self._shadow.wake()

    def rewind(self) -> list[Hypothesis]:
        """The utterance :meth:`endpoint` closed went on: decode it again as one.

        A fresh recognizer hears the closed utterance and what followed, so a sentence cut
        at a pause ("하나 둘 셋 | 넷") is judged whole. The closed utterance's shadow is that
        recognizer, having heard it already (unless its readings were asked for: Vosk
        finalized it then): it only hears what followed. Decoding the closed utterance
        again took a fifth of the listener's CPU on eval_listener's synthetic set.
        """
        if self._closed is None or self._utterance_audio is None:
            return []
        start, closed, later = self._closed.start, self._closed.audio, self._utterance_audio
        self._drop_shadow()  # the running one's: replaced below; its thread need not wait
        heard = self._closed.shadow.take() if self._closed.shadow is not None else None
        if heard is None:
            self._recognizer = self._new_recognizer()
            results: list[str] = []
            tail: list[PcmBlock] = []  # the blocks since Vosk's last endpoint inside it
            audio = closed + later
        else:
            self._recognizer = heard.recognizer
            results = list(heard.results)
            tail = closed[len(closed) - heard.since_endpoint :]
            audio = later
        self._offset_ms = start * 1000 // SAMPLE_RATE_HZ
        self._close(None)
        for block in audio:
            tail.append(block)
            if self._recognizer.AcceptWaveform(block.tobytes()):
                results.append(self._recognizer.Result())
                tail = []
        self._begin_utterance(self._samples - sum(int(b.size) for b in tail), tail)
        return [h for result in results for h in self._final(result)]

    def _new_utterance(self) -> None:
        self._begin_utterance(self._samples, [])

    def _begin_utterance(self, start: int, audio: list[PcmBlock]) -> None:
        """The running utterance starts at ``start`` (samples) and has heard ``audio``;
        a new shadow hears it too."""
        self._utterance_start = start
        self._utterance_audio = audio
        self._drop_shadow()
        self._shadow = Shadow(self._new_recognizer, self._shadow_worker, audio,
                              RECONSIDER_READINGS)

    def _drop_shadow(self) -> None:
        if self._shadow is not None:
            self._shadow.drop()
            self._shadow = None

    def _close(self, closed: _Closed | None) -> None:
        """Keep ``closed`` as the utterance endpoint() closed (its shadow, if any, is now
        the closed one's); the one kept before is let go."""
        if self._closed is not None and self._closed.shadow is not None:
            self._closed.shadow.drop()
        self._closed = closed

    def _final(self, result_json: str) -> list[Hypothesis]:
        # Also with no words: the utterance ended (the judge starts afresh; without it, a
        # partial command the gate had dropped kept the judge from hearing anything until
        # the next final with words: a live e2e run missed the user's PAIN 13 s later).
        words = self._words(json.loads(result_json).get("result", []), self._offset_ms)
        return [Hypothesis(words, final=True, stream_ms=self.stream_ms)]

    @staticmethod
    def _words(raw: list[dict[str, Any]], offset_ms: int) -> tuple[Word, ...]:
        return tuple(
            Word(
                text=str(w["word"]),
                start_ms=offset_ms + round(float(w["start"]) * 1000),
                end_ms=offset_ms + round(float(w["end"]) * 1000),
                confidence=float(w.get("conf", 1.0)),
            )
            for w in raw
        )
