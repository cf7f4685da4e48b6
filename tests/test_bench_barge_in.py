"""scripts/bench_barge_in.py on one sentence of the default routine, with the real Korean Vosk
model and espeak-ng speech: its figures have the promised shape, and a PAIN said clearly
over the coach's sentence is heard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from listen_support import ko_model_dir, require_espeak

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_barge_in as bench

pytestmark = [pytest.mark.vosk, pytest.mark.speech]

SENTENCE = "Lie on your back. Let one leg rest long and straight on the floor."
"""A sentence of the default routine (five seconds of the coach's voice)."""


@pytest.fixture(scope="module")
def outcome() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The benchmark's core on one sentence: clean, self and one barge-in condition."""
    ko_model_dir()
    require_espeak()
    assert SENTENCE in bench.routine_sentences(measured=False)
    corpus = bench.build_corpus([SENTENCE], ["vosk"], seed=11, paths=["direct"])
    # turn=0: sentence 0 hears the first word, "아야" (PAIN), at 6 dB over the coach.
    conditions = [
        bench.Condition("clean", "direct"),
        bench.Condition("self", "direct"),
        bench.Condition("barge", "direct", 6.0, 0.5, 0),
    ]
    results = bench.run_all(corpus, ["vosk"], conditions, jobs=1)
    return bench.summarize(results)


def test_pain_said_over_the_coachs_sentence_is_heard_soon_after_the_word(
    outcome: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    _, rows = outcome
    barge = [r for r in rows if r["kind"] == "barge"]
    assert len(barge) == 1
    case = barge[0]
    assert (case["text"], case["phrase"], case["command"]) == (SENTENCE, "아야", "PAIN")
    # The word's centre is at half the spoken sentence: the coach talks under it.
    assert case["sentence_start_ms"] < case["onset_ms"] < case["word_end_ms"]
    assert case["word_end_ms"] < case["sentence_end_ms"]
    assert case["detected"], f"PAIN not heard over the sentence: {case}"
    assert [e["command"] for e in case["events"]] == ["PAIN"]
    assert 0 < case["latency_ms"] <= 1000


def test_the_report_has_baselines_and_every_figure(
    outcome: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    summaries, rows = outcome
    assert [s["engine"] for s in summaries] == ["vosk"]
    summary = summaries[0]
    assert summary["sentences"] == 1
    # Clean baseline: the same word and level with the coach silent.
    assert summary["clean"]["n"] == 1
    assert summary["clean"]["detected"] == 1
    # The coach's sentence alone, no user word: nothing heard.
    assert [s["path"] for s in summary["self"]] == ["direct"]
    assert summary["self"][0]["commands"] == 0
    (condition,) = summary["conditions"]
    assert (condition["path"], condition["snr_db"], condition["n"]) == ("direct", 6.0, 1)
    assert condition["by_command"]["PAIN"] == [1, 1]
    assert condition["rate_vs_clean"] == pytest.approx(1.0)
    assert condition["latency_p50_ms"] is not None
    assert condition["missed"] == []
    assert condition["false_commands"] == {}
    (sentence,) = summary["per_sentence"]
    assert sentence["text"] == SENTENCE
    assert (sentence["pain_detected"], sentence["pain_n"]) == (1, 1)
    assert {r["kind"] for r in rows} == {"clean", "self", "barge"}


def test_the_printed_report_names_the_conditions_and_baselines(
    outcome: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    summaries, _ = outcome
    bench.print_report(summaries)
    printed = capsys.readouterr().out
    assert "=== vosk (ko)" in printed
    assert "clean baseline" in printed
    assert "self-trigger baseline" in printed
    assert "direct 6 dB" in printed
    assert "missed words (0)" in printed
