#!/usr/bin/env python3
"""Benchmark cue timing through the real audio stack: does each sound start when planned?

Issue 5 asks that ``coach run`` play the rendered track's timeline on a monotonic clock,
every cue within 50 ms of its planned offset over a whole session (pauses excepted). This
runs ``coach run ROUTINE --no-listen`` as a user would (its own process, real PortAudio into
a PulseAudio null sink) and records the sink's monitor. The session's timeline is compiled
here exactly as ``coach run`` compiles it (measured speech lengths, a first session, no
voice-command instructions as nobody listens); every spoken sentence and earcon is then
found in the recording near its planned time by normalised cross-correlation of its first
400 ms. A cue's error is where it was found minus where the plan puts it, after removing
the median offset over the session (process start and output latency shift every cue
alike; only the differences are timing errors). The drift is the slope of the errors over
the session.

Baseline, measured the same way in the same run: the same timeline rendered to a WAV
(``coach.track.render_track``) and played into the same sink by ``paplay``; it shows the
method's own floor (the detector, PulseAudio).

    .venv/bin/python scripts/bench_cues.py [--routine tests/data/session_short.yaml]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from pulse_support import SINK_OUT, SOURCE_OUT_MONITOR, running_pulse  # noqa: E402
from recording_support import Tap, find  # noqa: E402

if TYPE_CHECKING:
    from coach.speech import Synthesizer
    from coach.timeline import Timeline

RATE = 16_000
TEMPLATE_MS = 400
"""Length of the piece of each sound looked for in the recording."""
SEARCH_MS = 600
"""How far from its planned time a sound is looked for, either way."""
MIN_SCORE = 0.5
"""Normalised correlation below which a sound counts as not found."""
TARGET_MS = 50
LEG = "left"


@dataclass(frozen=True)
class Expected:
    """A sound of the plan: its first loud sample's planned time and its opening."""

    label: str
    at_ms: int
    template: npt.NDArray[np.float64]


def planned_sounds(
    routine_ref: str, data_dir: Path
) -> tuple[list[Expected], Timeline, Synthesizer]:
    """The SAY and TONE cues of the session ``coach run`` plays (and its timeline, synthesizer)."""
    os.environ["COACH_DATA_DIR"] = str(data_dir)
    from coach.earcons import earcon
    from coach.loader import resolve_routine
    from coach.resample import resample
    from coach.session import without_roles
    from coach.speech import Synthesizer
    from coach.timeline import CueKind, Leg, Role, TimelineOptions, compile_timeline
    from coach.voices import DEFAULT_VOICE_ID, load_voice

    profile = load_voice(DEFAULT_VOICE_ID)
    synthesizer = Synthesizer(profile)
    options = TimelineOptions(affected_leg=Leg(LEG), voice_id=profile.id, rate_wpm=profile.rate_wpm)
    timeline = compile_timeline(
        resolve_routine(routine_ref), options, speech_ms=synthesizer.speech_ms
    )
    # As the session plays it with --no-listen: without the voice-command instructions.
    timeline = without_roles(timeline, [Role.COMMANDS])
    sounds: list[Expected] = []
    for cue in timeline.cues:
        if cue.kind is CueKind.SAY and cue.text:
            phrase = synthesizer.synthesize(cue.text)
            pcm, rate, label = phrase.pcm, phrase.sample_rate_hz, cue.text
        elif cue.kind is CueKind.TONE and cue.earcon is not None:
            rate = synthesizer.sample_rate_hz
            pcm, label = earcon(cue.earcon, rate), f"[{cue.earcon.value}]"
        else:
            continue
        x = resample(pcm, rate, RATE).astype(np.float64)
        loud = np.flatnonzero(np.abs(x) > 0.05 * np.max(np.abs(x)))
        if loud.size == 0:
            continue
        lead = int(loud[0])
        template = x[lead : lead + TEMPLATE_MS * RATE // 1000]
        sounds.append(Expected(label, cue.at_ms + lead * 1000 // RATE, template))
    return sounds, timeline, synthesizer


def errors_in(recording: npt.NDArray[np.float64], sounds: list[Expected]) -> list[float | None]:
    """Each sound's timing error (ms, median offset removed); None where it was not found."""
    first = sounds[0]
    head = recording[: 20 * RATE]
    at, score = find(first.template, head)
    if score < MIN_SCORE:
        raise SystemExit(f"the session's first sound was not found (score {score:.2f})")
    origin = at * 1000 / RATE - first.at_ms
    found: list[float | None] = []
    for sound in sounds:
        centre = origin + sound.at_ms
        lo = max(0, int((centre - SEARCH_MS) * RATE / 1000))
        hi = int((centre + SEARCH_MS) * RATE / 1000) + len(sound.template)
        window = recording[lo:hi]
        pos, score = find(sound.template, window)
        found.append((lo + pos) * 1000 / RATE - sound.at_ms if score >= MIN_SCORE else None)
    offsets = [f for f in found if f is not None]
    median = statistics.median(offsets)
    return [None if f is None else f - median for f in found]


def report(
    name: str, sounds: list[Expected], errors: list[float | None], every: bool = False
) -> list[float]:
    """Print one run's figures; returns the absolute errors of the sounds found."""
    pairs = [(s, e) for s, e in zip(sounds, errors, strict=True) if e is not None]
    absolute = [abs(e) for _, e in pairs]
    missing = len(sounds) - len(pairs)
    times = np.array([s.at_ms for s, _ in pairs]) / 60_000
    slope = float(np.polyfit(times, [e for _, e in pairs], 1)[0]) if len(pairs) > 2 else 0.0
    late = [(s.label, e) for s, e in pairs if abs(e) > TARGET_MS]
    print(
        f"{name}: {len(pairs)} sounds found ({missing} not found); |error| median "
        f"{statistics.median(absolute):.1f} ms, p95 {np.percentile(absolute, 95):.1f} ms, max "
        f"{max(absolute):.1f} ms; over {TARGET_MS} ms: {len(late)}; drift {slope:+.1f} ms/min"
    )
    shown = [(s.label, e) for s, e in pairs] if every else late[:10]
    for label, error in shown:
        print(f"    {error:+7.1f} ms  {label[:70]}")
    return absolute


def record(command: list[str], env: dict[str, str], quiet_s: float) -> npt.NDArray[np.float64]:
    """Run ``command`` while recording the coach's sink; stop once it ends."""
    tap = Tap(SOURCE_OUT_MONITOR)
    try:
        done = subprocess.run(
            command,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command[:4])} failed: {done.stderr[-500:]}")
        time.sleep(quiet_s)
        return tap.pcm()
    finally:
        tap.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--routine", default=str(REPO / "tests" / "data" / "session_short.yaml"))
    parser.add_argument("--every", action="store_true", help="print every sound's error")
    args = parser.parse_args()
    with running_pulse(), tempfile.TemporaryDirectory(prefix="coach-bench-cues-") as tmp:
        data = Path(tmp) / "data"
        sounds, timeline, synthesizer = planned_sounds(args.routine, data)
        env = {**os.environ, "COACH_DATA_DIR": str(data)}
        total_s = sounds[-1].at_ms / 1000
        print(f"{len(sounds)} sounds over {total_s:.0f} s ({args.routine})")

        from coach.track import render_track

        track = Path(tmp) / "session.wav"
        render_track(timeline, synthesizer, track)
        baseline = record(["paplay", f"--device={SINK_OUT}", str(track)], env, 1.0)
        live = record(
            [
                sys.executable,
                "-m",
                "coach",
                "run",
                args.routine,
                "--no-listen",
                "--affected-leg",
                LEG,
            ],
            env,
            1.0,
        )
    base = report(
        "baseline (the rendered track played by paplay)", sounds, errors_in(baseline, sounds)
    )
    ours = report("coach run", sounds, errors_in(live, sounds), args.every)
    print(
        f"coach run against the baseline: median |error| "
        f"{statistics.median(ours) / max(statistics.median(base), 0.1):.1f}x, p95 "
        f"{np.percentile(ours, 95) / max(float(np.percentile(base, 95)), 0.1):.1f}x "
        f"(target: every cue within {TARGET_MS} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
