#!/usr/bin/env python3
"""Benchmark ``coach render`` of the "full" routine: cold and warm phrase cache vs raw espeak-ng.

Each render runs in a fresh child process (so peak memory is that of one render, and
a cold run really starts cold: a new empty COACH_CACHE_DIR). The child times from
creating the synthesizer to the renamed output file (module imports excluded) and
also times encoding alone (the same samples written again), so the cold render can
be compared with its floor: the same distinct sentences spoken by the ``espeak-ng``
command (same voice, rate and volume) plus encoding, measured in the same run.

Targets (issue 3): cold <= 1.5x (raw espeak-ng + encoding); warm >= 200x real time;
peak memory < 300 MB.

    .venv/bin/python scripts/bench_render.py [--runs 3] [--format mp3] [--routine full]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from coach.encode import audio_format, write_audio
from coach.loader import resolve_routine
from coach.speech import Synthesizer
from coach.timeline import CueKind, TimelineOptions, compile_timeline
from coach.track import render_track
from coach.voices import DEFAULT_VOICE_ID, load_voice
import soundfile

routine_id, out = sys.argv[1], Path(sys.argv[2])
routine = resolve_routine(routine_id)
started = time.perf_counter()
with Synthesizer(load_voice(DEFAULT_VOICE_ID)) as synth:
    options = TimelineOptions(voice_id=DEFAULT_VOICE_ID)
    timeline = compile_timeline(routine, options, speech_ms=synth.speech_ms)
    summary = render_track(timeline, synth, out)
    wall_s = time.perf_counter() - started
    stats = synth.stats
    voice_id = synth.voice.voice_id
    rate_wpm, volume = synth.profile.rate_wpm, synth.profile.volume
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
pcm, rate = soundfile.read(str(out), dtype="float32")
again = out.with_name("encode-" + out.name)
encode_started = time.perf_counter()
write_audio(again, pcm, rate, audio_format(out), title="t", artist="a")
encode_s = time.perf_counter() - encode_started
sentences = sorted({c.text for c in timeline.cues if c.kind is CueKind.SAY and c.text})
print(json.dumps({
    "wall_s": wall_s, "audio_s": summary.duration_ms / 1000, "peak_mb": peak_mb,
    "encode_s": encode_s, "hits": stats.hits, "misses": stats.misses,
    "synth_s": stats.synth_s, "sentences": sentences, "voice": voice_id,
    "rate_wpm": rate_wpm, "volume": volume, "lufs": summary.loudness_lufs,
}))
"""


def render_once(routine: str, out: Path, cache_dir: Path) -> dict[str, object]:
    """One render in a child process with COACH_CACHE_DIR=cache_dir."""
    env = dict(os.environ, COACH_CACHE_DIR=str(cache_dir))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, routine, str(out)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def espeak_floor_s(sentences: list[str], voice: str | None, rate_wpm: int, volume: float) -> float:
    """Seconds for the espeak-ng command to speak every sentence to a WAV on stdout."""
    command = ["espeak-ng", "-s", str(rate_wpm), "-a", str(round(volume * 100)), "--stdout"]
    if voice:
        command[1:1] = ["-v", voice]
    started = time.perf_counter()
    for sentence in sentences:
        subprocess.run([*command, sentence], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    """Run the benchmark and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--format", default="mp3", choices=["wav", "flac", "ogg", "mp3"])
    parser.add_argument("--routine", default="full", help="built-in routine id")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("bench_render: espeak-ng is not installed", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="coach-bench-") as tmp:
        root = Path(tmp)
        out = root / f"{args.routine}.{args.format}"
        cold = []
        for run in range(args.runs):
            cold.append(render_once(args.routine, out, root / f"cold-{run}"))
        warm_cache = root / "cold-0"
        warm = [render_once(args.routine, out, warm_cache) for _ in range(args.runs)]
        first = cold[0]
        sentences = list(first["sentences"])  # type: ignore[call-overload]
        floors = [
            espeak_floor_s(
                sentences,
                first["voice"],  # type: ignore[arg-type]
                int(first["rate_wpm"]),  # type: ignore[call-overload]
                float(first["volume"]),  # type: ignore[arg-type]
            )
            for _ in range(args.runs)
        ]

    def median(runs: list[dict[str, object]], key: str) -> float:
        return statistics.median(float(run[key]) for run in runs)  # type: ignore[arg-type]

    audio_s = float(first["audio_s"])  # type: ignore[arg-type]
    cold_s, warm_s = median(cold, "wall_s"), median(warm, "wall_s")
    encode_s = median(cold + warm, "encode_s")
    floor_s = statistics.median(floors)
    peak_mb = max(float(run["peak_mb"]) for run in cold + warm)  # type: ignore[arg-type]
    print(
        f"routine {args.routine}: {audio_s:.1f} s of audio, {len(sentences)} distinct "
        f"sentences, format {args.format}, medians of {args.runs} runs"
    )
    print(
        f"  cold render      {cold_s:7.2f} s   {audio_s / cold_s:7.1f}x real time "
        f"(synthesizer {median(cold, 'synth_s'):.2f} s, "
        f"{int(median(cold, 'misses'))} synthesized)"
    )
    print(
        f"  warm render      {warm_s:7.2f} s   {audio_s / warm_s:7.1f}x real time "
        f"({int(median(warm, 'hits'))} from the cache, {int(median(warm, 'misses'))} synthesized)"
    )
    print(f"  raw espeak-ng    {floor_s:7.2f} s   (espeak-ng command, one process per sentence)")
    print(f"  encoding alone   {encode_s:7.2f} s   ({args.format})")
    ratio = cold_s / (floor_s + encode_s)
    print(
        f"  cold / (espeak-ng + encoding) = {ratio:.2f}   target <= 1.5  "
        f"{'ok' if ratio <= 1.5 else 'MISSED'}"
    )
    print(
        f"  warm real-time factor = {audio_s / warm_s:.0f}x   target >= 200x  "
        f"{'ok' if audio_s / warm_s >= 200 else 'MISSED'}"
    )
    print(
        f"  peak memory (max RSS of a render process) = {peak_mb:.0f} MB   target < 300 MB  "
        f"{'ok' if peak_mb < 300 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
