"""The spotter engine: VAD-cut utterances classified by a small packaged model, no download.

Each utterance the energy segmenter cuts out (``coach.listen.vad``) is described by its
normalised log-mel shape (``coach.listen.features``) and classified by a one-hidden-layer
network trained on espeak-ng speech of every English command phrase and of many other
words (``scripts/train_spotter.py``). An utterance that is no command phrase with enough
probability comes out as the filler word ``[unk]``, so the judge rejects it. The user's
own recordings from ``coach enroll`` (``coach.listen.enroll``) are matched as well, by
dynamic time warping. A final hypothesis is emitted once the hang-over of silence after
the utterance has passed (180 ms), with word times in the input clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coach.errors import CoachError
from coach.listen.engine import SAMPLE_RATE_HZ, Hypothesis, PcmBlock, Word
from coach.listen.enroll import Enrollment
from coach.listen.features import dtw_distance, log_mel, shape_vector, template
from coach.listen.vad import FRAME_MS, Segmenter, Utterance, VadSettings, word_span_ms
from coach.listen.vocabulary import Vocabulary

UNKNOWN = "[unk]"
"""The filler word for an utterance that is no command."""
MODEL_NAME = "spotter_model.npz"
MAX_COMMAND_MS = 2200
"""An utterance longer than this (first to last voiced frame) is other speech."""
MIN_COMMAND_MS = 150
"""Shorter voiced stretches (a lone release burst, a click) are no command."""
CONTINUATION_GAP_MS = 300
"""An utterance starting this soon after the previous one ended continues running speech
(a sentence with a pause in it), and a command is said on its own: it is not taken."""
DEFAULT_THRESHOLD = 0.8
"""Probability a command needs when the model file names no threshold for it."""


@dataclass(frozen=True)
class SpotterModel:
    """The packaged classifier: weights, feature normalisation, classes, thresholds."""

    w1: NDArray[np.float64]
    b1: NDArray[np.float64]
    w2: NDArray[np.float64]
    b2: NDArray[np.float64]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]
    phrases: tuple[str, ...]
    """Class names: command phrases, and ``[unk]`` for everything else."""
    commands: tuple[str, ...]
    """The command of each class (``[unk]`` for the other class)."""
    thresholds: dict[str, float]
    """Least probability per command (summed over its phrases) to report it."""
    cepstra: int = 0
    """Feature kind the model was trained on (see ``features.shape_vector``)."""

    @classmethod
    def load(cls, path: Path | None = None) -> SpotterModel:
        """The model at ``path``, or the one packaged with coach."""
        try:
            if path is None:
                source = resources.files("coach.listen").joinpath(MODEL_NAME)
                with source.open("rb") as handle:
                    data: Any = dict(np.load(handle, allow_pickle=False))
            else:
                data = dict(np.load(path, allow_pickle=False))
        except (OSError, ValueError, KeyError) as err:
            raise CoachError(f"cannot read the spotter model {path or MODEL_NAME}: {err}") from err
        meta = json.loads(str(data["meta"]))
        return cls(
            w1=np.asarray(data["w1"], np.float64),
            b1=np.asarray(data["b1"], np.float64),
            w2=np.asarray(data["w2"], np.float64),
            b2=np.asarray(data["b2"], np.float64),
            mean=np.asarray(data["mean"], np.float64),
            std=np.asarray(data["std"], np.float64),
            phrases=tuple(str(p) for p in data["phrases"]),
            commands=tuple(str(c) for c in data["commands"]),
            thresholds={str(k): float(v) for k, v in meta.get("thresholds", {}).items()},
            cepstra=int(meta.get("cepstra", 0)),
        )

    def probabilities(self, vector: NDArray[np.float32]) -> NDArray[np.float64]:
        """Class probabilities for one feature vector."""
        x = (np.asarray(vector, np.float64) - self.mean) / self.std
        hidden = np.maximum(np.dot(x, self.w1) + self.b1, 0.0)
        logits = np.dot(hidden, self.w2) + self.b2
        logits -= logits.max()
        p = np.exp(logits)
        return np.asarray(p / p.sum(), np.float64)


@dataclass(frozen=True)
class Decision:
    """What the spotter made of one utterance (also used by the benchmark)."""

    phrase: str
    """A command phrase, or ``[unk]``."""
    confidence: float
    command_probability: float
    """Model probability of the best command (all its phrases), before thresholds."""
    best_command: str
    enrolled_distance: float | None
    """DTW distance to the closest enrolled recording, if the user enrolled."""


class SpotterEngine:
    """Segment, classify each utterance as a command phrase or ``[unk]``; no download."""

    name = "spotter"

    def __init__(
        self,
        vocabulary: Vocabulary,
        model: SpotterModel | None = None,
        enrollment: Enrollment | None = None,
        vad: VadSettings | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> None:
        if vocabulary.language != "en":
            raise CoachError("the spotter only knows English; use --language en")
        self.model = model or SpotterModel.load()
        self.enrollment = enrollment
        known = set(self.model.phrases)
        if enrollment is not None:
            known |= set(enrollment.templates)
        phrases: dict[Any, tuple[str, ...]] = {}
        self.dropped_phrases: list[str] = []
        for command, items in vocabulary.phrases.items():
            kept = tuple(p for p in items if p in known)
            self.dropped_phrases += [p for p in items if p not in known]
            if kept:
                phrases[command] = kept
        if not phrases:
            raise CoachError("the spotter model knows none of the command phrases")
        self.vocabulary = Vocabulary(vocabulary.language, phrases, ())
        self._command_of = {p: c.value for c, ps in phrases.items() for p in ps}
        self.filler_words = frozenset({UNKNOWN})
        self.thresholds = dict(self.model.thresholds)
        if thresholds:
            self.thresholds.update(thresholds)
        self._segmenter = Segmenter(vad)
        self._samples = 0
        self._previous_end_ms = -CONTINUATION_GAP_MS

    @property
    def stream_ms(self) -> int:
        """Audio consumed so far, in ms."""
        return self._samples * 1000 // SAMPLE_RATE_HZ

    def accept(self, pcm: PcmBlock) -> list[Hypothesis]:
        """Feed one block; a final hypothesis for each utterance that ended in it."""
        block = np.asarray(pcm, np.int16).reshape(-1)
        self._samples += len(block)
        return [self._hypothesis(u) for u in self._segmenter.accept(block)]

    def flush(self) -> list[Hypothesis]:
        """End of input: decide the open utterance."""
        return [self._hypothesis(u) for u in self._segmenter.flush()]

    def decide(self, pcm: NDArray[np.int16], span_ms: tuple[int, int] | None = None
               ) -> Decision:
        """Classify one utterance: ``pcm`` with the word at ``span_ms`` (ms from its start)."""
        mel = log_mel(pcm)
        span = None if span_ms is None else (span_ms[0] // FRAME_MS, span_ms[1] // FRAME_MS)
        length_ms = (span_ms[1] - span_ms[0]) if span_ms is not None else len(pcm) * 1000 // (
            SAMPLE_RATE_HZ)
        p = self.model.probabilities(shape_vector(mel, self.model.cepstra, span))
        totals: dict[str, float] = {}
        for phrase, command, prob in zip(self.model.phrases, self.model.commands, p, strict=True):
            if phrase in self._command_of or command == UNKNOWN:
                totals[command] = totals.get(command, 0.0) + float(prob)
        # Phrases known only from the user's enrollment have no model class.
        best_command = max((c for c in totals if c != UNKNOWN), key=totals.__getitem__,
                           default=UNKNOWN)
        probability = totals[best_command] if best_command != UNKNOWN else 0.0
        phrase, confidence = UNKNOWN, 1.0 - probability
        threshold = self.thresholds.get(best_command, DEFAULT_THRESHOLD)
        plausible = MIN_COMMAND_MS <= length_ms <= MAX_COMMAND_MS
        if probability >= threshold and plausible:
            candidates = [
                (float(prob), ph) for ph, cmd, prob in zip(
                    self.model.phrases, self.model.commands, p, strict=True)
                if cmd == best_command and ph in self._command_of
            ]
            phrase, confidence = max(candidates)[1], probability
        distance = None
        if self.enrollment is not None and self.enrollment.templates:
            word = mel if span is None else mel[span[0] : span[1]]
            enrolled, distance = self._nearest_enrolled(template(word))
            limit = self.enrollment.max_distance
            if enrolled is not None and distance <= limit and plausible:
                closeness = 1.0 - 0.5 * distance / limit  # 1 at zero distance, 0.5 at limit
                if phrase == UNKNOWN or closeness > confidence:
                    phrase, confidence = enrolled, max(closeness, probability)
        return Decision(phrase, min(1.0, max(0.0, confidence)), probability, best_command,
                        distance)

    def _nearest_enrolled(self, features: NDArray[np.float32]) -> tuple[str | None, float]:
        assert self.enrollment is not None
        best: tuple[str | None, float] = (None, float("inf"))
        for phrase, takes in self.enrollment.templates.items():
            if phrase not in self._command_of:
                continue
            for take in takes:
                distance = dtw_distance(features, take)
                if distance < best[1]:
                    best = (phrase, distance)
        return best

    def _hypothesis(self, utterance: Utterance) -> Hypothesis:
        decision = self.decide(utterance.pcm, word_span_ms(utterance))
        continues = utterance.start_ms - self._previous_end_ms < CONTINUATION_GAP_MS
        self._previous_end_ms = utterance.end_ms
        words = [UNKNOWN] if continues or decision.phrase == UNKNOWN else decision.phrase.split()
        span = max(1, utterance.end_ms - utterance.start_ms)
        step = span / len(words)
        timed = tuple(
            Word(text, utterance.start_ms + round(i * step),
                 utterance.start_ms + round((i + 1) * step), decision.confidence)
            for i, text in enumerate(words)
        )
        return Hypothesis(timed, final=True, stream_ms=self.stream_ms)
