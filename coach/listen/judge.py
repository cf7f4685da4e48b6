"""The whole-utterance rule: when a hypothesis counts as a command, per-command thresholds.

A grammar-restricted engine maps any speech onto some grammar word, often with
confidence 1.0. So a command is accepted only when the *whole* utterance is (almost)
just its phrase: every non-filler word must belong to command phrases of one command
(PAIN and STOP may be mixed: "ouch, stop"), at most ``max_filler_words`` other words
may surround it, every phrase word must reach ``min_confidence`` and last no longer
than a spoken word does.

A partial hypothesis (no confidences yet) is accepted early when it passes the same
rule and either the voice activity detector has heard ``partial_silence_ms`` of
silence after the speech, or the partial has stayed unchanged for
``partial_stable_ms``: that is how PAIN and STOP are heard about a quarter of a second
after the word, long before the engine closes the utterance. In both cases the
utterance must be short: no longer than ``max_utterance_ms`` (plus
``per_word_ms`` for each further word of the phrase), measured on the word times of a
final result or by the voice activity detector for a partial one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from coach.listen.commands import URGENT_COMMANDS, Command
from coach.listen.engine import Hypothesis, Word
from coach.listen.vocabulary import Vocabulary


@dataclass(frozen=True)
class Threshold:
    """How sure the judge must be before it accepts one command."""

    min_confidence: float
    """Lowest word confidence (0..1) allowed inside the phrase."""
    max_filler_words: int
    """Other words (filler, unknown) allowed in the same utterance."""
    partial_silence_ms: int | None
    """Accept a partial hypothesis after this much silence; None: wait for the final."""
    partial_stable_ms: int = 600
    """... or once the partial has not changed for this long (speech over speech)."""
    max_utterance_ms: int = 1400
    """Longest utterance (first word start to last word end) for a one-word phrase."""
    per_word_ms: int = 450
    """Extra utterance length allowed per further word of the phrase."""
    max_word_ms: int = 1300
    """A phrase word lasting longer than this is other speech forced onto the word."""


# PAIN and STOP favour recall (never miss them; an extra pause is harmless); NEXT, SKIP
# and REPEAT change what the session does, so they favour precision.
DEFAULT_THRESHOLDS: dict[Command, Threshold] = {
    Command.PAIN: Threshold(0.45, 1, 100, 480),
    Command.STOP: Threshold(0.45, 1, 100, 480),
    Command.PAUSE: Threshold(0.6, 0, 200, 600),
    Command.HELP: Threshold(0.6, 0, 200, 600),
    Command.NEXT: Threshold(0.8, 0, None),
    Command.SKIP: Threshold(0.8, 0, None),
    Command.REPEAT: Threshold(0.8, 0, None),
    Command.END: Threshold(0.8, 0, None),
}
FALLBACK_THRESHOLD = Threshold(0.7, 0, 300, 720)
"""For commands not listed above (RESUME, SLOWER, FASTER, GENTLER, YES, NO)."""


@dataclass(frozen=True)
class Verdict:
    """A command the judge accepted."""

    command: Command
    phrase: str
    confidence: float
    word_start_ms: int
    word_end_ms: int


def _parse(
    words: tuple[Word, ...], vocabulary: Vocabulary
) -> tuple[list[tuple[Command, str, tuple[Word, ...]]], list[Word]]:
    """Greedy longest-match of command phrases; the rest are other words."""
    table: dict[tuple[str, ...], Command] = {
        tuple(p.split()): c for c, p in vocabulary.all_phrases()
    }
    longest = max((len(k) for k in table), default=1)
    found: list[tuple[Command, str, tuple[Word, ...]]] = []
    other: list[Word] = []
    i = 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            key = tuple(w.text for w in words[i : i + n])
            command = table.get(key)
            if command is not None:
                found.append((command, " ".join(key), words[i : i + n]))
                i += n
                break
        else:
            other.append(words[i])
            i += 1
    return found, other


def judge_words(
    words: tuple[Word, ...],
    vocabulary: Vocabulary,
    thresholds: dict[Command, Threshold] | None = None,
) -> Verdict | None:
    """Apply the whole-utterance rule to one utterance's words."""
    table = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    found, other = _parse(words, vocabulary)
    if not found:
        return None
    commands = {c for c, _, _ in found}
    if len(commands) > 1 and not commands <= URGENT_COMMANDS:
        return None
    # "ouch, stop": report PAIN, the more specific of the two urgent commands.
    command = Command.PAIN if Command.PAIN in commands else next(iter(commands))
    threshold = table.get(command, FALLBACK_THRESHOLD)
    if len(other) > threshold.max_filler_words:
        return None
    spoken = [w for _, _, ws in found for w in ws]
    if any(w.end_ms - w.start_ms > threshold.max_word_ms for w in spoken):  # -1 - -1 passes
        return None
    confidence = min(w.confidence for w in spoken)
    if confidence < threshold.min_confidence:
        return None
    best = next((p, ws) for c, p, ws in found if c == command)
    verdict = Verdict(command, best[0], confidence, best[1][0].start_ms, best[1][-1].end_ms)
    timed = all(w.end_ms >= 0 for w in words)
    if timed and words[-1].end_ms - words[0].start_ms > _longest_ms(threshold, verdict):
        return None
    return verdict


def _longest_ms(threshold: Threshold, verdict: Verdict) -> int:
    extra_words = len(verdict.phrase.split()) - 1
    return threshold.max_utterance_ms + threshold.per_word_ms * extra_words


@dataclass(frozen=True)
class SpeechSpan:
    """What the voice activity detector knows about the current utterance (stream ms)."""

    start_ms: int
    end_ms: int
    trailing_silence_ms: int


@dataclass
class Judge:
    """Turns an engine's hypotheses into at most one Verdict per utterance."""

    vocabulary: Vocabulary
    thresholds: dict[Command, Threshold] = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    _partial_text: str = ""
    _partial_since_ms: int = 0
    _emitted: bool = False

    def consider(
        self,
        hypothesis: Hypothesis,
        speech: SpeechSpan | None = None,
        *,
        trust_partial: Callable[[], bool] | None = None,
    ) -> Verdict | None:
        """A verdict if this hypothesis settles a command not yet reported.

        ``trust_partial``, asked only when a partial hypothesis would settle a command:
        False, and it settles nothing now (the caller does not trust it: see
        Listener._partials_trusted); its text is still tracked, and the final decides."""
        if hypothesis.final:
            done = self._emitted
            self._reset()
            return None if done else judge_words(hypothesis.words, self.vocabulary, self.thresholds)
        if self._emitted:
            return None
        text = hypothesis.text
        if text != self._partial_text:
            self._partial_text = text
            self._partial_since_ms = hypothesis.stream_ms
        verdict = judge_words(hypothesis.words, self.vocabulary, self.thresholds)
        if verdict is None:
            return None
        threshold = self.thresholds.get(verdict.command, FALLBACK_THRESHOLD)
        if threshold.partial_silence_ms is None:
            return None
        silent = speech is not None and speech.trailing_silence_ms >= threshold.partial_silence_ms
        stable = hypothesis.stream_ms - self._partial_since_ms >= threshold.partial_stable_ms
        if not (silent or stable):
            return None
        if speech is None or speech.end_ms - speech.start_ms > _longest_ms(threshold, verdict):
            return None
        if trust_partial is not None and not trust_partial():
            return None
        self._emitted = True
        if not hypothesis.timed:
            start = speech.start_ms if speech is not None else hypothesis.stream_ms
            end = speech.end_ms if speech is not None else hypothesis.stream_ms
            verdict = Verdict(verdict.command, verdict.phrase, verdict.confidence, start, end)
        return verdict

    @property
    def emitted(self) -> bool:
        """Whether a command was already reported for the running utterance."""
        return self._emitted

    def _reset(self) -> None:
        self._partial_text = ""
        self._partial_since_ms = 0
        self._emitted = False
