"""The spotter over the coach's voice: a lower bar for "stop" while the coach is audible,
and a word the self-word gate held back not spending the refractory time. Real espeak-ng
speech (the coach's default voice, the user en-us+f4), the real front end and head, the
real listener; the streams are scripts/bench_barge_in.py's (warm-up sentences first, so the
echo canceller has learnt the echo).

Two syntheses of one sentence by the coach's voice differ by a few samples, and that moves
a word's score by up to about 0.2 (a "stop" that scored 0.67 in one run scored 0.91 in
the next): so these tests count over many words, not one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from listen_support import require_espeak

from coach.listen.listener import Listener
from coach.listen.spotter import OVER_COACH_THRESHOLDS, SpotterEngine, SpotterModel
from coach.listen.vocabulary import load_vocabulary
from tests.spotter_support import needs_front_end

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_barge_in as bench

pytestmark = [needs_front_end, pytest.mark.speech]

PLAIN = (
    "Exercise one of two: ankle pumps.",
    "Lie on your back. Let one leg rest long and straight on the floor.",
    "A gentle movement at the ankle. Maybe a light pull in the calf.",
    "Toes down, away from you.",
    "Good, keep breathing.",
    "Exercise two of two: the lying glide.",
)
"""Sentences of the default routine with no command word in them."""
SAYS_STOP = (
    "Stop if you feel sharp pain, or if tingling or numbness gets stronger. "
    "A gentle pull is fine. Pain is not.",
    "Stop if you feel severe pain, or if your symptoms get worse.",
    "Stop if you feel sharp pain, or tingling or numbness that grows. "
    "Only straighten as far as feels easy.",
)
"""Sentences in which the coach itself says "stop"."""
CONDITIONS = [("direct", snr, position) for snr in (0.0, 6.0) for position in (0.25, 0.75)]


def heard(texts: tuple[str, ...], variants: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The user's "stop" said over each of ``texts`` in every condition: per variant of the
    spotter (keyword arguments; ``held_back=False`` takes that hook away), what each word
    was heard as ("" for nothing), and "self:" + what the coach's sentences alone gave."""
    require_espeak()
    known = bench.routine_sentences(measured=False)
    assert set(texts) <= set(known)
    corpus = bench.build_corpus(list(texts), ["spotter"], seed=5, paths=["direct"])
    (stop,) = [w for w in corpus.words["spotter"] if w.phrase == "stop"]
    corpus.words["spotter"] = [stop]
    vocabulary = load_vocabulary("en", with_user=False)
    model = SpotterModel.load()
    streams = [bench.build(corpus, "spotter", bench.Condition("barge", *c)) for c in CONDITIONS]
    streams.append(bench.build(corpus, "spotter", bench.Condition("self", "direct")))
    out: dict[str, list[str]] = {}
    for name, options in variants.items():
        options = dict(options)
        held_back = options.pop("held_back", True)
        results: list[str] = []
        for built in streams:
            engine = SpotterEngine(vocabulary, model=model, **options)
            if not held_back:
                engine.held_back = None  # type: ignore[assignment,method-assign]
            events = bench.hear(Listener(engine), built)
            if "command" not in built.labels[0]:
                results += ["self:" + e.command.value for e in events]
                continue
            for label in built.labels:
                near = [e for e in events if -300 <= e.detected_ms - label["word_end_ms"] <= 700]
                results.append(",".join(e.command.value for e in near))
            assert len(events) == sum(1 for r in results[-len(built.labels):] if r), events
        out[name] = results
    return out


def test_stop_over_the_coach_is_heard_more_often_with_the_lower_bar() -> None:
    """Over sentences with no command word, the canceller's leftover echo under "stop"
    keeps many of them under the usual 0.8; with the coach's 0.6 more are heard, and the
    coach alone still gives nothing."""
    assert OVER_COACH_THRESHOLDS == {"STOP": 0.6}
    out = heard(PLAIN, {"lower": {}, "usual": {"over_coach_thresholds": {}}})
    n = len(PLAIN) * len(CONDITIONS)
    for results in out.values():
        assert len(results) == n
        assert set(results) <= {"", "STOP"}  # nothing else, and nothing from the coach alone
    lower, usual = (out[k].count("STOP") for k in ("lower", "usual"))
    # Measured in three runs (fresh syntheses): 21, 21, 20 of 24 against 11, 12, 15.
    assert lower >= usual + 3, (lower, usual)
    assert lower >= 0.7 * n, (lower, n)


def test_a_stop_the_gate_held_back_does_not_hide_the_surer_steps_of_the_same_word() -> None:
    """Over the coach's own "Stop if you feel ...", the self-word gate asks 0.8 of a "stop".
    A word's first step over the coach's 0.6 often scores less and is held back; the
    spotter, told so, still hears the word's next steps, and many reach 0.8. Not told, the
    refractory time of that first step hides them."""
    out = heard(SAYS_STOP, {"told": {}, "untold": {"held_back": False}})
    n = len(SAYS_STOP) * len(CONDITIONS)
    for results in out.values():
        assert len(results) == n
        assert set(results) <= {"", "STOP"}
    told, untold = (out[k].count("STOP") for k in ("told", "untold"))
    # Measured in three runs (fresh syntheses): 6, 5, 7 of 12 against 1, 2, 0.
    assert told >= untold + 2, (told, untold)
