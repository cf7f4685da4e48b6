#!/usr/bin/env python3
"""Benchmark ``coach render`` of the "full" routine: cold and warm phrase cache vs raw espeak-ng.

Each render runs in a fresh child process (so peak memory is that of one render, and
a cold run really starts cold: a new empty COACH_CACHE_DIR). The child times from
creating the synthesizer to the renamed output file (module imports excluded) and
also times encoding alone (the same samples written again), so the cold render can
be compared with its floor: the same distinct sentences spoken by the ``espeak-ng``
command (same voice, rate and volume) plus encoding, measured in the same run.

``--baseline DIR`` renders with another copy of the package too (e.g. an older
commit unpacked with ``git archive``), interleaved run by run with this one, so
before/after figures come from the same run under the same machine load. The load
average is printed at the start and the end.

Targets (issue 3): cold <= 1.5x (raw espeak-ng + encoding); warm >= 200x real time;
peak memory < 300 MB.

    .venv/bin/python scripts/bench_render.py [--runs 3] [--formats wav,mp3] [--routine full]
        [--baseline DIR]
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
from dataclasses import dataclass, field
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

FORMATS = ["wav", "flac", "ogg", "mp3"]


@dataclass
class Runs:
    """The measurements of one variant (this tree or the baseline) for one format."""

    cold: list[dict[str, object]] = field(default_factory=list)
    warm: list[dict[str, object]] = field(default_factory=list)

    def median(self, which: str, key: str) -> float:
        """Median of ``key`` over the cold or warm runs."""
        runs = self.cold if which == "cold" else self.warm
        return statistics.median(float(run[key]) for run in runs)  # type: ignore[arg-type]

    def peak_mb(self) -> float:
        """Highest peak RSS of any render."""
        return max(float(run["peak_mb"]) for run in self.cold + self.warm)  # type: ignore[arg-type]


def render_once(routine: str, out: Path, cache_dir: Path, source: Path | None) -> dict[str, object]:
    """One render in a child process with COACH_CACHE_DIR=cache_dir (and ``source`` first on
    the import path, for the baseline)."""
    env = dict(os.environ, COACH_CACHE_DIR=str(cache_dir))
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, routine, str(out)],
        env=env,
        cwd=out.parent,  # not this tree: "python -c" puts the working folder first on sys.path
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


def load_text() -> str:
    """The 1, 5 and 15 minute load averages and the number of CPUs."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> int:
    """Run the benchmark and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--formats",
        "--format",
        default="mp3",
        help=f"comma-separated formats to render ({','.join(FORMATS)}; default mp3)",
    )
    parser.add_argument("--routine", default="full", help="built-in routine id")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="folder holding another copy of the coach package to compare with, same run",
    )
    args = parser.parse_args()
    formats = [name.strip().lower() for name in args.formats.split(",") if name.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        parser.error(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    if shutil.which("espeak-ng") is None:
        print("bench_render: espeak-ng is not installed", file=sys.stderr)
        return 2
    if args.baseline is not None and not (args.baseline / "coach" / "track.py").is_file():
        parser.error(f"--baseline {args.baseline}: no coach/track.py there")
    variants: dict[str, Path | None] = {"this tree": None}
    if args.baseline is not None:
        variants[f"baseline {args.baseline}"] = args.baseline.resolve()

    load_at_start = load_text()
    results: dict[tuple[str, str], Runs] = {
        (fmt, name): Runs() for fmt in formats for name in variants
    }
    floors: list[float] = []
    first: dict[str, object] | None = None
    with tempfile.TemporaryDirectory(prefix="coach-bench-") as tmp:
        root = Path(tmp)
        # Interleaved: each run renders every format and variant, and times the floor once.
        for run in range(args.runs):
            for fmt in formats:
                for index, (name, source) in enumerate(variants.items()):
                    out = root / f"{args.routine}-{index}.{fmt}"
                    cache = root / f"cold-{fmt}-{index}-{run}"
                    measured = render_once(args.routine, out, cache, source)
                    results[fmt, name].cold.append(measured)
                    first = first or measured
            assert first is not None
            floors.append(
                espeak_floor_s(
                    list(first["sentences"]),  # type: ignore[call-overload]
                    first["voice"],  # type: ignore[arg-type]
                    int(first["rate_wpm"]),  # type: ignore[call-overload]
                    float(first["volume"]),  # type: ignore[arg-type]
                )
            )
        for _ in range(args.runs):
            for fmt in formats:
                for index, (name, source) in enumerate(variants.items()):
                    out = root / f"{args.routine}-{index}.{fmt}"
                    warm_cache = root / f"cold-{fmt}-{index}-0"
                    results[fmt, name].warm.append(
                        render_once(args.routine, out, warm_cache, source)
                    )
    load_at_end = load_text()

    assert first is not None
    audio_s = float(first["audio_s"])  # type: ignore[arg-type]
    floor_s = statistics.median(floors)
    sentences = len(first["sentences"])  # type: ignore[arg-type]
    print(
        f"routine {args.routine}: {audio_s:.1f} s of audio, {sentences} distinct sentences; "
        f"medians of {args.runs} runs"
    )
    print(f"load average: {load_at_start} at the start, {load_at_end} at the end")
    each = ", ".join(f"{s:.2f}" for s in floors)
    print(
        f"raw espeak-ng: {floor_s:.2f} s (espeak-ng command, one process per sentence; runs {each})"
    )
    for fmt in formats:
        ours = results[fmt, "this tree"]
        encode_s = statistics.median(
            float(run["encode_s"])  # type: ignore[arg-type]
            for run in ours.cold + ours.warm
        )
        base_s = floor_s + encode_s
        print(
            f"\nformat {fmt}: encoding alone {encode_s:.2f} s; "
            f"floor = espeak-ng + encoding = {base_s:.2f} s"
        )
        print(
            f"  {'':<34}{'cold s':>8}{'synth s':>9}{'cold/floor':>12}"
            f"{'warm s':>9}{'warm x RT':>11}{'warm/floor':>12}{'peak MB':>9}"
        )
        for name in variants:
            runs = results[fmt, name]
            cold_s, warm_s = runs.median("cold", "wall_s"), runs.median("warm", "wall_s")
            print(
                f"  {name[:34]:<34}{cold_s:8.2f}{runs.median('cold', 'synth_s'):9.2f}"
                f"{cold_s / base_s:12.2f}{warm_s:9.2f}{audio_s / warm_s:10.0f}x"
                f"{warm_s / base_s:12.2f}{runs.peak_mb():9.0f}"
            )
        cold_s, warm_s = ours.median("cold", "wall_s"), ours.median("warm", "wall_s")
        print(
            f"  targets (this tree): cold/floor {cold_s / base_s:.2f} <= 1.5 "
            f"{verdict(cold_s / base_s <= 1.5)}; warm {audio_s / warm_s:.0f}x >= 200x "
            f"{verdict(audio_s / warm_s >= 200)}; peak {ours.peak_mb():.0f} MB < 300 MB "
            f"{verdict(ours.peak_mb() < 300)}"
        )
        if len(variants) > 1:
            for name in list(variants)[1:]:
                base = results[fmt, name]
                print(
                    f"  this tree vs {name}: cold "
                    f"{base.median('cold', 'wall_s') / cold_s:.1f}x faster, warm "
                    f"{base.median('warm', 'wall_s') / warm_s:.1f}x faster, peak memory "
                    f"{ours.peak_mb() - base.peak_mb():+.0f} MB"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
