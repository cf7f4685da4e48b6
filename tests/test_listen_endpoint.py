"""The listener's early endpoint, with a scripted engine and canceller (no model needed).

The real Vosk engine is tested through the same path in tests/test_listen_vosk.py; here
the engine and the canceller are fakes so the voice-activity timing is exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from listen_support import DeafEngine, feed, noise, silence

from coach.listen.commands import Command
from coach.listen.echo import CANCELLERS, FRAME_SAMPLES
from coach.listen.engine import Hypothesis, PcmBlock, Word
from coach.listen.listener import Listener

RATE = 16_000


class LeakyCanceller:
    """Removes 70% of the reference's amplitude: its residual keeps 9% of an echo's energy
    (quiet, but above voice activity's threshold), and all of a voice with no echo."""

    def __init__(self, filter_ms: int = 200) -> None:
        del filter_ms

    def process(self, mic: PcmBlock, reference: PcmBlock) -> tuple[PcmBlock, PcmBlock, PcmBlock]:
        n = len(mic) // FRAME_SAMPLES * FRAME_SAMPLES
        mic, reference = mic[:n], reference[:n]
        residual = mic.astype(np.float64) - 0.7 * reference.astype(np.float64)
        return residual.astype(np.int16), mic, reference


class ScriptedEngine(DeafEngine):
    """Hears nothing until asked to close an utterance; then hears "아야" (PAIN), ending
    ``before_endpoint_ms`` before the endpoint (the default: as Vosk's words end, 30-110 ms
    before voice activity does, when the early endpoint closes them 120-140 ms after it)."""

    def __init__(self, before_endpoint_ms: int = 200) -> None:
        super().__init__()
        self.endpoints: list[int] = []
        self.rewinds = 0
        self._before_ms = before_endpoint_ms

    def endpoint(self) -> list[Hypothesis]:
        now = self.now_ms
        self.endpoints.append(now)
        word = Word("아야", now - 500, now - self._before_ms, 0.9)
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
