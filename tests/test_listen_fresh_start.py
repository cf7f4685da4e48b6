"""The listener restarts the engine at each new coach sentence, once nobody is talking.

A scripted engine (no model) records its restarts, so the timing is exact. What the
restart buys with the real Vosk model (adaptation to the user, not to the coach's echo)
is measured by replaying bench_live recordings and by scripts/bench_barge_in.py.
"""

from __future__ import annotations

import numpy as np
from listen_support import DeafEngine, feed, noise, silence

from coach.listen.commands import Command
from coach.listen.engine import Hypothesis, Word
from coach.listen.listener import FRESH_START_QUIET_MS, Listener

RATE = 16_000


class RestartingEngine(DeafEngine):
    """Hears nothing; records each restart, and may finish the running utterance with a
    word when restarted."""

    def __init__(self, final_word: str | None = None) -> None:
        super().__init__()
        self.restarts: list[int] = []
        self.final_word = final_word

    def restart(self) -> list[Hypothesis]:
        now = self.now_ms
        self.restarts.append(now)
        if self.final_word is None:
            return []
        word = Word(self.final_word, now - 500, now - 200, 0.9)
        return [Hypothesis((word,), final=True, stream_ms=now)]


def samples(ms: int) -> int:
    return ms * RATE // 1000


def test_each_new_sentence_restarts_the_engine_once() -> None:
    engine = RestartingEngine()
    listener = Listener(engine)
    mic = silence(3000)
    playing = [
        (samples(200), samples(1200), "첫 문장"),
        # the same sentence again straight after (a new clip of it) is still one sentence
        (samples(1200), samples(1500), "첫 문장"),
        (samples(2000), samples(2800), "둘째 문장"),
    ]
    assert feed(listener, mic, playing=playing) == []
    assert engine.restarts == [220, 2020]  # at the first 20 ms block of each sentence
    assert listener.fresh_starts == 2


def test_no_restart_while_the_person_is_talking() -> None:
    engine = RestartingEngine()
    listener = Listener(engine)
    # A person talks from 800 to 1600 ms; the coach's sentence begins at 1000 ms.
    mic = np.concatenate([silence(800), noise(800, 3000.0, seed=1), silence(1400)])
    feed(listener, mic, playing=[(samples(1000), samples(3000), "문장")])
    assert len(engine.restarts) == 1
    restarted = engine.restarts[0]
    assert 1600 + FRESH_START_QUIET_MS <= restarted <= 1600 + FRESH_START_QUIET_MS + 40


def test_the_utterance_the_restart_finishes_is_judged() -> None:
    engine = RestartingEngine(final_word="아야")
    listener = Listener(engine)
    events = feed(listener, silence(1500), playing=[(samples(1000), samples(1500), "문장")])
    assert [e.command for e in events] == [Command.PAIN]
    assert events[0].word_end_ms == 1020 - 200


def test_an_engine_without_restart_is_left_alone() -> None:
    class PlainEngine(RestartingEngine):
        restart = None  # type: ignore[assignment]

    listener = Listener(PlainEngine())
    assert feed(listener, silence(1000), playing=[(0, samples(1000), "문장")]) == []
    assert listener.fresh_starts == 0
