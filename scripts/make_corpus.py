"""Build a labelled synthetic corpus for the listener: commands and other speech in streams.

Every command phrase of the vocabulary (``--language en`` or ``ko``) is spoken by several
espeak-ng voices, rates and pitches; negative speech (the built-in routines' sentences,
counting, everyday words, words that sound like commands) is spoken too. Utterances are
normalised to the same active speech level and pasted at known offsets into ~60 s
streams, once per condition: ``clean`` (quiet room noise), ``10`` dB and ``0`` dB SNR
(white, pink or babble noise, rotating per stream). The same utterances at the same
offsets appear in every condition, so conditions compare like with like.

Output (``--out``, default /tmp/coach-corpus-LANG):

- ``streams/<condition>-<kind>-NNN.wav``: 16 kHz mono int16 streams (kind: cmd or neg)
- ``manifest.jsonl``: one row per utterance: file, kind, command (null for negative
  speech), phrase (the text spoken), voice, rate, pitch, snr_db (null = clean), noise,
  condition, onset_ms, word_end_ms (stream clock; active span, see corpus_lib), ...
- ``corpus.json``: the parameters and every stream (file, kind, condition, duration_ms)
- ``clips/``: the espeak-ng cache (16 kHz), reused by later runs

Deterministic for a given ``--seed`` and espeak-ng version. Example:

    .venv/bin/python scripts/make_corpus.py --language en --out /tmp/coach-corpus-en
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus_lib as cl

VOICES: dict[str, list[str]] = {
    "en": ["en-us", "en-gb", "en-gb-x-rp", "en-us+f3", "en-gb+m3", "en-gb-scotland+f2",
           "en-029+m2", "en-us-nyc+f4"],
    "ko": ["ko", "ko+f3", "ko+m3", "ko+f2", "ko+m5", "ko+f4"],
}
"""espeak-ng voices (with +variants for other speakers) per language."""
RATES_WPM = [140, 175, 210]
PITCHES = [30, 50, 75]
URGENT = {"PAIN", "STOP"}

COUNTING = {
    "en": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "one, two, three, four, five", "six, seven, eight, nine, ten",
           "hold it for five seconds", "that's three"],
    "ko": ["하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉", "열",
           "하나 둘 셋 넷 다섯", "다섯까지 세세요"],
}
EVERYDAY = {
    "en": ["hello", "good morning", "thank you", "what time is it", "the kettle is boiling",
           "I'm fine thanks", "the weather is nice today", "can you hear me",
           "let me get some water", "where are my glasses", "okay", "right", "sure",
           "the dog wants to go out", "I think so", "maybe later", "that's interesting",
           "turn the light on", "my phone is ringing", "see you tomorrow"],
    "ko": ["안녕하세요", "고맙습니다", "지금 몇 시예요", "오늘 날씨가 좋네요", "물 좀 주세요",
           "괜찮아요", "전화가 와요", "내일 봐요", "배고파요", "음악을 틀어 주세요"],
}
SOUNDALIKES = {
    "en": ["top", "step", "pane", "paint", "text", "nest", "stock", "spot", "shop", "plain",
           "rain", "neck", "best", "point", "cost", "window", "hello there", "paper",
           "shopping", "test"],
    "ko": ["그림", "다리", "아버지", "다음주", "계단", "멈추다", "아프리카", "시장"],
}
INSTRUCTIONS_KO = [
    "다리를 천천히 들어 올리세요", "숨을 내쉬세요", "무릎을 펴세요", "발목을 당기세요",
    "통증이 있으면 멈추세요", "등을 대고 누우세요", "이번에는 반대쪽 다리입니다",
    "잘하셨어요 조금 쉬세요", "머리를 들어 주세요", "다섯을 셀 때까지 유지하세요",
]


@dataclass(frozen=True)
class Spec:
    """One utterance to synthesize: what, in which variant, and its label."""

    text: str
    variant: cl.VoiceVariant
    kind: str
    command: str | None
    category: str


def instruction_sentences(language: str) -> list[str]:
    """The sentences the built-in routines say (English), or a Korean stand-in list."""
    if language != "en":
        return list(INSTRUCTIONS_KO)
    from coach.loader import builtin_ids, load_builtin
    from coach.timeline import CueKind, compile_timeline

    seen: dict[str, None] = {}
    for routine_id in builtin_ids():
        for cue in compile_timeline(load_builtin(routine_id)).cues:
            if cue.kind is CueKind.SAY and cue.text:
                seen.setdefault(cue.text, None)
    return list(seen)


def command_phrases(language: str) -> list[tuple[str, str]]:
    """(command, phrase) pairs of the packaged vocabulary (the user's additions ignored)."""
    import os
    import tempfile

    from coach.listen.vocabulary import load_vocabulary

    saved = os.environ.get("COACH_CONFIG_DIR")
    with tempfile.TemporaryDirectory(prefix="coach-corpus-config-") as empty:
        os.environ["COACH_CONFIG_DIR"] = empty
        try:
            vocabulary = load_vocabulary(language)
        except Exception as err:  # CoachError: an unknown language
            raise SystemExit(f"make_corpus: {err}") from err
        finally:
            if saved is None:
                os.environ.pop("COACH_CONFIG_DIR", None)
            else:
                os.environ["COACH_CONFIG_DIR"] = saved
    return [(c.value, p) for c, p in vocabulary.all_phrases()]


def plan_specs(
    language: str,
    rng: np.random.Generator,
    variants: int,
    urgent_variants: int,
    instructions: int,
    negative_variants: int,
    limit: int | None = None,
) -> list[Spec]:
    """Every command phrase x variants, then negative speech, in a seeded order."""
    voices = VOICES[language]

    def pick(n: int) -> list[cl.VoiceVariant]:
        order = rng.permutation(len(voices))
        return [
            cl.VoiceVariant(voices[int(order[k % len(voices)])],
                            int(rng.choice(RATES_WPM)), int(rng.choice(PITCHES)))
            for k in range(n)
        ]

    specs: list[Spec] = []
    pairs = command_phrases(language)
    if limit is not None:  # a tiny corpus (tests): the first phrase of a few commands
        firsts: dict[str, str] = {}
        for command, phrase in pairs:
            firsts.setdefault(command, phrase)
        pairs = list(firsts.items())[:limit]
    for command, phrase in pairs:
        n = urgent_variants if command in URGENT else variants
        specs += [Spec(phrase, v, "cmd", command, "command") for v in pick(n)]
    sentences = instruction_sentences(language)
    chosen = [sentences[int(i)] for i in
              sorted(rng.permutation(len(sentences))[: min(instructions, len(sentences))])]
    for category, texts in (("instruction", chosen), ("counting", COUNTING[language]),
                            ("everyday", EVERYDAY[language]),
                            ("soundalike", SOUNDALIKES[language])):
        texts = texts if limit is None else texts[:limit]
        n = 1 if category == "instruction" else negative_variants
        specs += [Spec(t, v, "neg", None, category) for t in texts for v in pick(n)]
    return specs


def parse_conditions(text: str) -> list[float | None]:
    """'clean,10,0' -> [None, 10.0, 0.0]."""
    out: list[float | None] = []
    for part in text.split(","):
        part = part.strip()
        out.append(None if part == "clean" else float(part))
    return out


def condition_name(snr_db: float | None) -> str:
    """'clean' or e.g. 'snr10'."""
    return "clean" if snr_db is None else f"snr{snr_db:g}"


def build_corpus(
    out: Path,
    language: str = "en",
    *,
    seed: int = 7,
    conditions: list[float | None] | None = None,
    variants: int = 3,
    urgent_variants: int = 8,
    instructions: int = 60,
    negative_variants: int = 2,
    stream_s: int = 60,
    gap_ms: tuple[int, int] = (1800, 3200),
    jobs: int = 2,
    log: bool = True,
    limit: int | None = None,
) -> Path:
    """Build the corpus into ``out``; returns the manifest path."""
    started = time.perf_counter()
    conditions = [None, 10.0, 0.0] if conditions is None else conditions
    rng = np.random.default_rng(seed)
    specs = plan_specs(language, rng, variants, urgent_variants, instructions,
                       negative_variants, limit)
    clips_dir = out / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        pcms = list(pool.map(lambda s: cl.espeak_cached(s.text, s.variant, clips_dir), specs))
    if log:
        print(f"synthesized {len(specs)} utterances in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)

    utterances: dict[str, list[cl.Utterance]] = {"cmd": [], "neg": []}
    for spec, pcm in zip(specs, pcms, strict=True):
        label: dict[str, Any] = {
            "kind": spec.kind, "command": spec.command, "phrase": spec.text,
            "category": spec.category, "language": language, "voice": spec.variant.voice,
            "rate": spec.variant.rate_wpm, "pitch": spec.variant.pitch,
        }
        utterances[spec.kind].append(cl.Utterance(cl.normalize_active(pcm), label))
    # Babble is made of speech that contains no command word at all.
    talkers = [u.pcm for u in utterances["neg"] if u.label["category"] in
               ("counting", "everyday")]

    rows: list[dict[str, Any]] = []
    streams: list[dict[str, Any]] = []
    for kind, items in utterances.items():
        order = [int(i) for i in rng.permutation(len(items))]
        items = [items[i] for i in order]
        durations = [len(u.pcm) * 1000 // cl.SAMPLE_RATE_HZ for u in items]
        layouts = cl.plan_streams(durations, stream_s * 1000, gap_ms, rng)
        for snr_db in conditions:
            cond = condition_name(snr_db)
            for n, layout in enumerate(layouts):
                noise_kind = "room" if snr_db is None else ("white", "pink", "babble")[n % 3]
                noise_rng = np.random.default_rng([seed, n, len(streams)])

                def background(samples: int, nk: str = noise_kind,
                               snr: float | None = snr_db,
                               r: np.random.Generator = noise_rng) -> cl.Audio:
                    room = cl.room_noise(samples, r)
                    if snr is None:
                        return room
                    if nk == "white":
                        noise = cl.white_noise(samples, r)
                    elif nk == "pink":
                        noise = cl.pink_noise(samples, r)
                    else:
                        noise = cl.babble_noise(samples, talkers, r)
                    return np.asarray(room + cl.noise_for_snr(noise, snr), np.float32)

                pcm, placed = cl.build_stream(items, layout, background)
                file = f"streams/{cond}-{kind}-{n:03d}.wav"
                cl.write_wav(out / file, pcm)
                duration_ms = len(pcm) * 1000 // cl.SAMPLE_RATE_HZ
                streams.append({"file": file, "kind": kind, "condition": cond,
                                "snr_db": snr_db, "noise": noise_kind,
                                "duration_ms": duration_ms})
                for p in placed:
                    p.label.update({"snr_db": snr_db, "noise": noise_kind, "condition": cond})
                    rows.append(p.row(file))
    manifest = out / "manifest.jsonl"
    cl.write_jsonl(manifest, rows)
    info = {
        "language": language, "seed": seed, "conditions": [condition_name(c) for c in conditions],
        "speech_level_dbfs": cl.SPEECH_LEVEL_DBFS, "room_noise_dbfs": cl.ROOM_NOISE_DBFS,
        "active_range_db": cl.ACTIVE_RANGE_DB, "voices": VOICES[language],
        "rates_wpm": RATES_WPM, "pitches": PITCHES, "streams": streams,
    }
    (out / "corpus.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    if log:
        hours = sum(s["duration_ms"] for s in streams) / 3.6e6
        print(f"wrote {len(rows)} labelled utterances in {len(streams)} streams "
              f"({hours * 60:.1f} min) to {out} in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--language", default="en", choices=sorted(VOICES))
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default /tmp/coach-corpus-LANG)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--conditions", default="clean,10,0",
                        help="comma list of 'clean' and SNRs in dB (default clean,10,0)")
    parser.add_argument("--variants", type=int, default=3,
                        help="voice/rate/pitch variants per command phrase")
    parser.add_argument("--urgent-variants", type=int, default=8,
                        help="variants per PAIN/STOP phrase")
    parser.add_argument("--instructions", type=int, default=60,
                        help="routine sentences used as negative speech")
    parser.add_argument("--negative-variants", type=int, default=2,
                        help="variants per counting/everyday/sound-alike item")
    parser.add_argument("--stream-s", type=int, default=60, help="stream length")
    parser.add_argument("--jobs", type=int, default=2, help="parallel espeak-ng processes")
    parser.add_argument("--quick", action="store_true",
                        help="small corpus: clean and 0 dB, fewer variants and sentences")
    args = parser.parse_args(argv)
    out = args.out or Path(f"/tmp/coach-corpus-{args.language}")
    if args.quick:
        args.conditions, args.variants, args.urgent_variants = "clean,0", 1, 4
        args.instructions, args.negative_variants = 15, 1
    build_corpus(
        out, args.language, seed=args.seed, conditions=parse_conditions(args.conditions),
        variants=args.variants, urgent_variants=args.urgent_variants,
        instructions=args.instructions, negative_variants=args.negative_variants,
        stream_s=args.stream_s, jobs=args.jobs,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
