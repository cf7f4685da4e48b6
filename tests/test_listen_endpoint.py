"""The listener's early endpoint, with a scripted engine and canceller (no model needed).

The real Vosk engine is tested through the same path in tests/test_listen_vosk.py; here
the engine and the canceller are fakes so the voice-activity timing is exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
from listen_support import BLOCK, DeafEngine, feed, noise, silence

from coach.listen.commands import Command
from coach.listen.echo import CANCELLERS, FRAME_SAMPLES, SelfWordGate
from coach.listen.engine import Hypothesis, PcmBlock, Word
from coach.listen.listener import Listener
from coach.listen.vosk_engine import JUDGE_THRESHOLDS as VOSK_THRESHOLDS
from coach.listen.vosk_engine import VoskEngine

RATE = 16_000


class LeakyCanceller:
    """Removes 70% of the reference's amplitude: its residual keeps 9% of an echo's energy
    (quiet, but above voice activity's threshold), and all of a voice with no echo."""

    removes = 0.7

    def __init__(self, filter_ms: int = 200) -> None:
        del filter_ms

    def process(self, mic: PcmBlock, reference: PcmBlock) -> tuple[PcmBlock, PcmBlock, PcmBlock]:
        n = len(mic) // FRAME_SAMPLES * FRAME_SAMPLES
        mic, reference = mic[:n], reference[:n]
        residual = mic.astype(np.float64) - self.removes * reference.astype(np.float64)
        return residual.astype(np.int16), mic, reference


class ScriptedEngine(DeafEngine):
    """Hears nothing until asked to close an utterance; then hears ``word`` (by default
    "아야", PAIN) with ``confidence``, ending ``before_endpoint_ms`` before the endpoint (the
    default: as Vosk's words end, 30-110 ms before voice activity does, when the early
    endpoint closes them 120-140 ms after it)."""

    def __init__(
        self, before_endpoint_ms: int = 200, word: str = "아야", confidence: float = 0.9
    ) -> None:
        super().__init__()
        self.endpoints: list[int] = []
        self.rewinds = 0
        self._before_ms = before_endpoint_ms
        self._word = word
        self._confidence = confidence

    def endpoint(self) -> list[Hypothesis]:
        now = self.now_ms
        self.endpoints.append(now)
        word = Word(self._word, now - 500, now - self._before_ms, self._confidence)
        return [Hypothesis((word,), final=True, stream_ms=now)]

    def rewind(self) -> list[Hypothesis]:
        self.rewinds += 1
        return []


@pytest.fixture
def leaky(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(CANCELLERS, "leaky", LeakyCanceller)
    return "leaky"


def test_a_blocked_look_at_the_coachs_echo_does_not_use_up_the_words_endpoint(
    leaky: str,
) -> None:
    # The coach's last syllable (echo only), a breath shorter than voice activity's gap,
    # then the user's word: one utterance to voice activity. Its first end (the echo) is
    # not closed early, since the residual is the coach's leftover; its real end is.
    echo = noise(150, 3000.0, seed=1)
    mic = np.concatenate([silence(500), echo, silence(180), noise(400, 3000.0, 2), silence(600)])
    reference = np.concatenate([silence(500), echo, silence(180), silence(400), silence(600)])
    engine = ScriptedEngine()
    listener = Listener(engine, canceller=leaky)  # type: ignore[arg-type]
    events = feed(listener, mic, reference)
    word_end_ms = 500 + 150 + 180 + 400
    assert engine.endpoints, "the word was never closed early"
    assert all(at > word_end_ms for at in engine.endpoints)  # never on the echo alone
    assert [e.command for e in events] == [Command.PAIN]
    assert events[0].detected_ms - word_end_ms <= 200  # closed early, not by the engine


def test_a_command_word_that_runs_on_into_the_silence_is_not_trusted_early() -> None:
    # The decoder, cut early, stretched the word over the silence after the voice (seen
    # over the coach's leftover echo: a false PAIN "아프다" that ended a live session).
    # The early final is not taken; the engine decodes the utterance again, whole.
    mic = np.concatenate([silence(500), noise(400, 3000.0, 2), silence(600)])
    engine = ScriptedEngine(before_endpoint_ms=0)  # ends at the endpoint: in the silence
    listener = Listener(engine)
    assert feed(listener, mic) == []
    assert engine.endpoints and engine.rewinds == len(engine.endpoints)
    # The same word ending inside the voice is heard at the early endpoint.
    inside = ScriptedEngine()
    assert [e.command for e in feed(Listener(inside), mic)] == [Command.PAIN]
    assert inside.rewinds == 0


class CoinTossEngine(ScriptedEngine):
    """Its early final is ``early`` (by default another word, "하세요"); its readings of
    the closed utterance (best first) are ``readings``: (text, likelihood relative to the
    best, end before the endpoint in ms)."""

    def __init__(
        self,
        readings: list[tuple[str, float, int]],
        early: str = "하세요",
        early_confidence: float = 0.55,
    ) -> None:
        super().__init__(word=early, confidence=early_confidence)
        self.readings = readings
        self.reconsidered = 0

    def reconsider(self) -> list[Hypothesis]:
        self.reconsidered += 1
        now = self.now_ms
        return [
            Hypothesis((Word(text, now - 500, now - before_ms, likelihood),), True, now)
            for text, likelihood, before_ms in self.readings
        ]


@pytest.mark.parametrize(
    ("readings", "heard"),
    [
        # "아야" a close second (a live e2e run: 0.81 of the best): PAIN at the endpoint.
        ([("하세요", 1.0, 200), ("아야", 0.81, 200)], [Command.PAIN]),
        # The best reading, on a second look (a bench_live recording).
        ([("아야", 1.0, 200), ("좋아요", 0.7, 200)], [Command.PAIN]),
        ([("하세요", 1.0, 200), ("그만", 0.6, 200)], [Command.STOP]),
        # A distant second is not enough (PAIN's threshold: 0.45) ...
        ([("하세요", 1.0, 200), ("아야", 0.3, 200)], []),
        # ... nor a reading that runs on into the silence after the voice ...
        ([("하세요", 1.0, 200), ("아야", 0.9, 0)], []),
        # ... and only PAIN and STOP are served early, whatever the reading.
        ([("하세요", 1.0, 200), ("다음", 1.0, 200)], []),
    ],
)
def test_a_close_second_reading_of_pain_or_stop_is_heard_at_the_early_endpoint(
    readings: list[tuple[str, float, int]], heard: list[Command]
) -> None:
    mic = np.concatenate([silence(500), noise(400, 3000.0, 2), silence(600)])
    engine = CoinTossEngine(readings)
    events = feed(Listener(engine), mic)
    assert engine.reconsidered == 1
    assert [e.command for e in events] == heard
    if heard:
        assert engine.rewinds == 0
        assert events[0].detected_ms - 900 <= 200  # at the early endpoint
    else:
        assert engine.rewinds == 1  # decoded again, whole, as before


def test_an_urgent_early_final_needs_no_second_opinion() -> None:
    mic = np.concatenate([silence(500), noise(400, 3000.0, 2), silence(600)])
    engine = CoinTossEngine([("하세요", 1.0, 200)], early="아야")
    assert [e.command for e in feed(Listener(engine), mic)] == [Command.PAIN]
    assert engine.reconsidered == 0


def test_a_sure_early_final_gets_no_second_opinion() -> None:
    # "하세요" heard with confidence 1.0 is not a coin toss: its readings are not asked,
    # and the utterance is decoded again whole, as before.
    mic = np.concatenate([silence(500), noise(400, 3000.0, 2), silence(600)])
    engine = CoinTossEngine([("하세요", 1.0, 200), ("아야", 0.9, 200)], early_confidence=1.0)
    assert feed(Listener(engine), mic) == []
    assert engine.reconsidered == 0 and engine.rewinds == 1


def test_no_second_opinion_when_the_early_final_weighed_the_command_word_itself() -> None:
    # The coach's first word heard as "아야" at 0.23 (below PAIN's threshold): the engine
    # weighed PAIN and found it wanting; its readings ("됐어" 1.0, "아야" 0.9) are not asked.
    mic = np.concatenate([silence(500), noise(400, 3000.0, 2), silence(600)])
    engine = CoinTossEngine([("됐어", 1.0, 200), ("아야", 0.9, 200)], early="아야",
                            early_confidence=0.23)
    assert feed(Listener(engine), mic) == []
    assert engine.reconsidered == 0 and engine.rewinds == 1


@pytest.mark.parametrize(
    ("readings", "heard", "rewinds"),
    [
        # "멈춰" (stop) heard as "넘겨" (skip), sure of it, with "멈춰" a close second
        # (bench_barge_in, over the coach): STOP at the endpoint, not SKIP.
        ([("넘겨", 1.0, 200), ("멈춰", 0.6, 200)], [Command.STOP], 0),
        ([("넘겨", 1.0, 200), ("다음", 0.9, 200), ("아파", 0.5, 200)], [Command.PAIN], 0),
        # No urgent reading close enough: decoded again whole, where SKIP is heard.
        ([("넘겨", 1.0, 200), ("멈춰", 0.3, 200)], [], 1),
        ([("넘겨", 1.0, 200), ("다음", 0.9, 200)], [], 1),
    ],
)
def test_a_sure_skip_or_next_with_a_close_second_reading_of_stop_is_a_stop(
    readings: list[tuple[str, float, int]], heard: list[Command], rewinds: int
) -> None:
    mic = np.concatenate([silence(500), noise(400, 3000.0, 2), silence(600)])
    engine = CoinTossEngine(readings, early="넘겨", early_confidence=0.95)
    listener = Listener(engine)
    events = feed(listener, mic)
    assert engine.reconsidered == 1
    assert [e.command for e in events] == heard
    assert engine.rewinds == rewinds
    # The SKIP the early final held is kept among the commands held back, once.
    assert [e.command for e in listener.dropped] == [Command.SKIP]


class WholeDecodeEngine(DeafEngine):
    """Hears ``word`` with ``confidence`` only when the utterance is decoded whole (at the
    end of input); optionally weighs its own confidences (``judge_thresholds``)."""

    def __init__(self, word: str, confidence: float, thresholds: Any = None) -> None:
        super().__init__()
        self._word = Word(word, 500, 900, confidence)
        if thresholds is not None:
            self.judge_thresholds = thresholds

    def flush(self) -> list[Hypothesis]:
        return [Hypothesis((self._word,), final=True, stream_ms=self.now_ms)]


@pytest.mark.parametrize(
    ("word", "confidence", "by_default", "by_vosk"),
    [
        # Over the coach, Vosk took a "멈춰" (stop) for "넘겨" (skip) at 0.81-0.88.
        ("넘겨", 0.85, [Command.SKIP], []),
        ("넘어가", 0.85, [Command.NEXT], []),
        ("넘겨", 0.95, [Command.SKIP], [Command.SKIP]),
        # Only the commands that move the session on ask for more.
        ("다시", 0.85, [Command.REPEAT], [Command.REPEAT]),
        ("아야", 0.5, [Command.PAIN], [Command.PAIN]),
    ],
)
def test_vosk_needs_a_surer_skip_or_next_than_the_judges_default(
    word: str, confidence: float, by_default: list[Command], by_vosk: list[Command]
) -> None:
    mic = np.concatenate([silence(500), noise(400, 3000.0, 2), silence(600)])
    plain = WholeDecodeEngine(word, confidence)
    assert [e.command for e in feed(Listener(plain), mic)] == by_default
    vosk_like = WholeDecodeEngine(word, confidence, VOSK_THRESHOLDS)
    assert [e.command for e in feed(Listener(vosk_like), mic)] == by_vosk
    assert VoskEngine.judge_thresholds is VOSK_THRESHOLDS  # what the real engine declares


def test_any_other_command_in_the_early_final_gets_no_second_opinion() -> None:
    # "다시" (REPEAT) and "잠깐" (PAUSE) do not move the session on: as before, a command
    # word the engine weighed is not second-guessed.
    mic = np.concatenate([silence(500), noise(400, 3000.0, 2), silence(600)])
    for early in ("다시", "잠깐"):
        engine = CoinTossEngine([(early, 1.0, 200), ("멈춰", 0.9, 200)], early=early,
                                early_confidence=0.95)
        assert feed(Listener(engine), mic) == []
        assert engine.reconsidered == 0 and engine.rewinds == 1


class PerfectCanceller(LeakyCanceller):
    """Removes the coach's echo entirely: an adapted canceller."""

    removes = 1.0


@pytest.mark.parametrize(("second", "heard"), [(0.39, True), (0.36, True), (0.25, False)])
def test_over_the_coach_a_more_distant_second_reading_counts(
    monkeypatch: pytest.MonkeyPatch, second: float, heard: bool
) -> None:
    # Live e2e runs (sessions 9 and 8): the person's "아야", said over the coach, was the
    # second reading at 0.39 and 0.36 of the best, and PAIN came 340-500 ms after the word.
    # Over the coach (canceller adapted) a reading 0.30 of the best counts; elsewhere 0.45.
    monkeypatch.setitem(CANCELLERS, "perfect", PerfectCanceller)
    coach = noise(3000, 1500.0, seed=3)
    word = np.concatenate([silence(2000), noise(400, 3000.0, 2), silence(600)])
    readings = [("하세요", 1.0, 200), ("아야", second, 200)]
    over = CoinTossEngine(readings)
    listener = Listener(over, canceller="perfect")  # type: ignore[arg-type]
    mic = (word.astype(np.int32) + coach).clip(-32768, 32767).astype(np.int16)
    events = feed(listener, mic, coach)
    assert over.reconsidered == 1
    assert [e.command for e in events] == ([Command.PAIN] if heard else [])
    # The same word with the coach silent: the usual 0.45.
    quiet = CoinTossEngine(readings)
    events = feed(Listener(quiet, canceller="perfect"), word, np.zeros_like(word))  # type: ignore[arg-type]
    assert quiet.reconsidered == 1 and events == []


class NoCanceller(LeakyCanceller):
    """Removes nothing: the canceller of a session's first second, not yet adapted."""

    removes = 0.0


def test_no_second_opinion_over_the_coach_before_the_canceller_has_adapted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(CANCELLERS, "none", NoCanceller)
    voice = noise(400, 3000.0, 2)
    mic = np.concatenate([silence(500), voice, silence(600)])
    reference = np.concatenate([silence(500), voice, silence(600)])  # the coach, played
    readings = [("하세요", 1.0, 200), ("아야", 0.9, 200)]
    engine = CoinTossEngine(readings)
    assert feed(Listener(engine, canceller="none"), mic, reference) == []  # type: ignore[arg-type]
    assert engine.endpoints and engine.reconsidered == 0
    # The same utterance with the coach silent gets its second opinion.
    quiet = CoinTossEngine(readings)
    heard = feed(Listener(quiet, canceller="none"), mic, np.zeros_like(mic))  # type: ignore[arg-type]
    assert [e.command for e in heard] == [Command.PAIN] and quiet.reconsidered == 1


class PartialEngine(DeafEngine):
    """Says "아야" in partial results (no times, no confidence, as Vosk's) from
    ``partial_from_ms`` on, and closes the utterance at ``final_at_ms`` (as Vosk's own
    endpointer does, about 500 ms after the voice) with it at ``final_confidence``."""

    def __init__(self, partial_from_ms: int, final_at_ms: int, final_confidence: float) -> None:
        super().__init__()
        self._partial_from_ms = partial_from_ms
        self._final_at_ms = final_at_ms
        self._final_confidence = final_confidence

    def accept(self, pcm: PcmBlock) -> list[Hypothesis]:
        before = self.now_ms
        super().accept(pcm)
        now = self.now_ms
        if before < self._final_at_ms <= now:
            word = Word("아야", now - 900, now - 520, self._final_confidence)
            return [Hypothesis((word,), final=True, stream_ms=now)]
        if self._partial_from_ms <= now < self._final_at_ms:
            return [Hypothesis((Word("아야", -1, -1, 1.0),), final=False, stream_ms=now)]
        return []


def _pain_over_the_coach(
    engine: PartialEngine, leaky: str, echo_path_moves_at_ms: int | None, word_rms: float = 2000.0
) -> list[tuple[Command, int]]:
    """The coach plays 0.5-3.4 s (the leaky canceller removes 91% of its energy: 10 dB);
    the person's word is 3.0-3.4 s, by default a little quieter than the coach (rms 2000
    against 3000); the caller may move the echo path 2.9 s in."""
    coach = np.concatenate([silence(500), noise(2900, 3000.0, 1), silence(1000)])
    word = np.concatenate([silence(3000), noise(400, word_rms, 2), silence(1000)])
    mic = (coach.astype(np.int32) + word).clip(-32768, 32767).astype(np.int16)
    listener = Listener(engine, canceller=leaky)  # type: ignore[arg-type]
    events = []
    for start in range(0, len(mic), BLOCK):
        if echo_path_moves_at_ms is not None and start == echo_path_moves_at_ms * RATE // 1000:
            listener.reference_moved()
        events += listener.feed(mic[start : start + BLOCK], coach[start : start + BLOCK])
    events += listener.finish()
    return [(e.command, e.detected_ms) for e in events]


def test_pain_in_a_partial_result_is_heard_at_once_over_a_canceller_that_removes_the_coach(
    leaky: str,
) -> None:
    heard = _pain_over_the_coach(PartialEngine(3300, 3900, 0.9), leaky, None)
    assert [c for c, _ in heard] == [Command.PAIN]
    assert heard[0][1] <= 3400 + 200  # from the partial, 100 ms after the voice


@pytest.mark.parametrize(("final_confidence", "heard"), [(0.9, [Command.PAIN]), (0.2, [])])
def test_pain_in_a_partial_result_waits_for_the_final_while_the_canceller_relearns(
    leaky: str, final_confidence: float, heard: list[Command]
) -> None:
    # A live e2e run: the echo path moved, the canceller let the coach through, and a
    # partial result turned the coach's voice into a command. A partial carries no
    # confidence; the final's is weighed (PAIN needs 0.45).
    events = _pain_over_the_coach(PartialEngine(3300, 3900, final_confidence), leaky, 2900)
    assert [c for c, _ in events] == heard
    assert all(at >= 3900 for _, at in events)


def test_pain_in_a_partial_result_is_heard_at_once_from_a_person_louder_than_the_coach(
    leaky: str,
) -> None:
    # While the canceller relearns, a voice well above what the coach's echo could make
    # (here 10 dB) is evidence enough of a person.
    events = _pain_over_the_coach(PartialEngine(3300, 3900, 0.2), leaky, 2900, word_rms=9000.0)
    assert [c for c, _ in events] == [Command.PAIN]
    assert events[0][1] <= 3400 + 200


class OnlyPainGate(SelfWordGate):
    """Drops every command but PAIN (as the real gate drops the coach's own words)."""

    def passes(self, phrases: Iterable[str], *args: Any, **kwargs: Any) -> bool:
        return "아야" in phrases


class TwoUtterancesEngine(DeafEngine):
    """Partial "일시정지" (PAUSE) in 0.5-1.5 s, an empty final at 1.5 s, then partial "아야"
    from 2.4 s: as Vosk does after the first utterance's words did not hold."""

    def accept(self, pcm: PcmBlock) -> list[Hypothesis]:
        before = self.now_ms
        super().accept(pcm)
        now = self.now_ms
        if before < 1500 <= now:
            return [Hypothesis((), final=True, stream_ms=now)]
        text = "일시정지" if 500 <= now < 1500 else "아야" if now >= 2400 else None
        return [] if text is None else [Hypothesis((Word(text, -1, -1, 1.0),), False, now)]


def test_a_dropped_command_does_not_deafen_the_next_utterance() -> None:
    mic = np.concatenate(
        [silence(500), noise(400, 3000.0, 1), silence(1100), noise(400, 3000.0, 2), silence(800)]
    )
    listener = Listener(TwoUtterancesEngine(), gate=OnlyPainGate())  # type: ignore[arg-type]
    events = feed(listener, mic)
    assert [e.command for e in listener.dropped] == [Command.PAUSE]
    assert [e.command for e in events] == [Command.PAIN]
    assert events[0].detected_ms <= 2400 + 200


class VoiceCountingEngine(DeafEngine):
    """Notes when the listener told it of a voice (its own clock), and if short."""

    def __init__(self) -> None:
        super().__init__()
        self.voice_at_ms: list[tuple[int, bool]] = []

    def voice_heard(self, short: bool) -> None:
        self.voice_at_ms.append((self.now_ms, short))


def test_the_engine_is_told_while_a_voice_is_heard_and_whether_it_is_short() -> None:
    # VoskEngine then decodes the utterance for a second opinion (its Shadow) while the
    # voice could still be closed early, and need not in quiet or in a long voice.
    engine = VoiceCountingEngine()
    word, babble = noise(400, 3000.0, 2), noise(2500, 3000.0, 3)
    mic = np.concatenate([silence(500), word, silence(600), babble, silence(300)])
    feed(Listener(engine, endpoint_max_ms=1600), mic)
    at_ms = [at for at, _ in engine.voice_at_ms]
    assert min(at_ms) >= 480 and max(at_ms) <= 500 + 400 + 600 + 2500
    assert not any(500 + 400 <= at < 1500 for at in at_ms)  # the silence between
    short = {at: s for at, s in engine.voice_at_ms}
    assert all(short[at] for at in at_ms if at < 1500 + 1600 - 20)
    assert not any(short[at] for at in at_ms if at > 1500 + 1600 + 20)
