"""``coach run``: the main job. A hands-free session by voice; with no speaker, a track."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from coach.cli_options import (
    add_affected_leg_argument,
    add_pace_argument,
    add_routine_argument,
    add_side_first_argument,
)
from coach.errors import CoachError
from coach.listen.select import ENGINE_NAMES
from coach.loader import DEFAULT_ROUTINE_ID, resolve_routine
from coach.paths import data_dir
from coach.routine import Routine
from coach.timeline import (
    CueKind,
    Leg,
    Timeline,
    TimelineOptions,
    compile_timeline,
)
from coach.voices import DEFAULT_VOICE_ID, VoiceProfile, load_voice

ENGINES = ENGINE_NAMES
"""Recognition engines ``--engine`` accepts (see ``coach.listen.select``)."""

NO_LISTEN_NOTICE = (
    "Voice control is off today, so I won't hear you. Just follow along, "
    "and stop whenever you need to."
)
NO_MICROPHONE_NOTICE = (
    "I can't find a microphone, so voice control is off today. Just follow along, "
    "and stop whenever you need to."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` subcommand."""
    parser = sub.add_parser(
        "run",
        help="a voice-guided session you control by voice (renders a track without a speaker)",
        description="Talk you through a routine with timed holds; say pain, stop, next, "
        "pause, resume, repeat, slower, faster or help at any time. With no audio output "
        "device the session is rendered to an audio file instead.",
    )
    add_routine_argument(parser)
    parser.add_argument(
        "--voice",
        default=DEFAULT_VOICE_ID,
        metavar="ID",
        help=f"voice profile (see 'coach voices'; default: {DEFAULT_VOICE_ID})",
    )
    add_pace_argument(parser)
    add_affected_leg_argument(parser, default_help="ask, or say 'your painful leg'")
    add_side_first_argument(parser)
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="speech recognition engine for voice commands (default: auto)",
    )
    parser.add_argument(
        "--model", type=Path, metavar="PATH", help="folder of the Vosk model to use"
    )
    parser.add_argument(
        "--language",
        metavar="LANG",
        help="language of the voice commands (default: the routine's language, or the "
        "model's with --model)",
    )
    parser.add_argument(
        "--input", metavar="DEV", help="microphone: device index or name (see 'coach devices')"
    )
    parser.add_argument(
        "--output", metavar="DEV", help="speaker: device index or name (see 'coach devices')"
    )
    parser.add_argument(
        "--no-listen", action="store_true", help="no voice control: just follow along"
    )
    parser.add_argument(
        "--record-audio",
        type=Path,
        metavar="DIR",
        help="keep what the listener heard (microphone and echo reference, 16 kHz) and "
        "every command in DIR, for a bug report; replay it with 'coach listen --wav "
        "DIR/listen.wav --with-reference'",
    )
    parser.add_argument(
        "--render-to",
        type=Path,
        metavar="FILE",
        help="render the session to this audio file instead of playing it (also where "
        "it goes when there is no audio device; default ./coach-ROUTINE.mp3)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run a live session, or render it when there is nothing to play it on."""
    routine = resolve_routine(args.routine or DEFAULT_ROUTINE_ID)
    profile = load_voice(args.voice)
    options = _options(args, profile)
    if args.render_to is not None:
        return _render_instead(args, routine, reason=None)

    from coach.audio import probe_output

    probe = probe_output(args.output)
    if not probe.ok:
        return _render_instead(args, routine, reason=probe.reason or "no audio output device")
    return _run_live(args, routine, profile, options)


def _options(args: argparse.Namespace, profile: VoiceProfile) -> TimelineOptions:
    try:
        return TimelineOptions(
            pace=args.pace,
            side_first=Leg(args.side_first),
            affected_leg=Leg(args.affected_leg) if args.affected_leg else Leg.AFFECTED,
            voice_id=profile.id,
            rate_wpm=profile.rate_wpm,
        )
    except ValueError as err:
        raise CoachError(f"invalid option: {err}") from None


# -- no speaker: render a track ------------------------------------------------------------


def default_track_path(routine_id: str) -> Path:
    """``./coach-ROUTINE.mp3``, or in the data folder when the current one is read-only."""
    name = f"coach-{routine_id}.mp3"
    here = Path.cwd()
    if os.access(here, os.W_OK):
        return here / name
    folder = data_dir() / "tracks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _render_instead(args: argparse.Namespace, routine: Routine, *, reason: str | None) -> int:
    from coach.commands import render

    out_path: Path = args.render_to or default_track_path(routine.id)
    if reason is not None:
        print(f"coach: no audio output device to play the session on: {reason}", file=sys.stderr)
        print(
            f"coach: rendering the session to an audio file instead: {out_path}",
            file=sys.stderr,
        )
    render_args = argparse.Namespace(
        routine=args.routine or routine.id,
        output=out_path,
        fmt=None,
        voice=args.voice,
        pace=args.pace,
        side_first=args.side_first,
        affected_leg=args.affected_leg,
        small_speaker=False,
    )
    code = render.run(render_args)
    if code == 0:
        print(f"Play {out_path} on any phone or speaker and follow it with your eyes closed.")
    return code


# -- the live session ----------------------------------------------------------------------


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """systemd stops a service with SIGTERM: end gracefully, as with Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _measuring(synthesizer: Any) -> Callable[[str], int]:
    measured: dict[str, int] = {}

    def speech_ms(text: str) -> int:
        if text not in measured:
            measured[text] = int(synthesizer.speech_ms(text))
        return measured[text]

    return speech_ms


def _language(args: argparse.Namespace, routine: Routine) -> str:
    if args.language:
        return str(args.language)
    if args.model is not None:
        from coach.listen.models import guess_language, package_model_dir

        model = Path(args.model).expanduser().resolve()
        packaged = package_model_dir()
        if packaged is not None and model == packaged.resolve():
            return "ko"
        guessed = guess_language(model.name)
        if guessed:
            return guessed
    return routine.language.split("-")[0]


def open_listener(engine: str, model: Path | None, language: str) -> tuple[Any, str]:
    """A Listener for ``language`` and which engine it uses (CoachError saying why not)."""
    from coach.listen.listener import Listener
    from coach.listen.select import build_engine, choose_engine
    from coach.listen.vocabulary import load_vocabulary

    vocabulary = load_vocabulary(language)
    choice = choose_engine(engine, language, Path(model).expanduser() if model else None)
    if choice.model_path is not None:
        from coach.listen.models import verify_model_dir

        verify_model_dir(choice.model_path)
    return Listener(build_engine(choice, vocabulary)), choice.reason


def _dose_today(journal: Any) -> Any:
    from coach.session import DoseToday

    recorded: dict[str | None, int] = journal.reps_by_leg()
    unsure = recorded.get(Leg.AFFECTED.value, 0) + recorded.get(None, 0)
    # Reps recorded before the leg was known count against both legs (the safe side).
    reps = {
        Leg.LEFT: recorded.get(Leg.LEFT.value, 0) + unsure,
        Leg.RIGHT: recorded.get(Leg.RIGHT.value, 0) + unsure,
    }
    return DoseToday(reps_by_leg=reps, sessions=journal.sessions_today())


def _report_glitches(output: Any, voice: Any) -> None:
    """One line about audio that did not flow smoothly (a busy CPU shows here first)."""
    microphone = getattr(voice, "microphone", None) if voice is not None else None
    overflows = getattr(microphone, "overflows", 0)
    parts = []
    if output.underflows:
        times = getattr(output, "underflow_times_s", [])
        at = f" (at {', '.join(f'{t:.1f}' for t in times)} s)" if times else ""
        parts.append(f"{output.underflows} speaker underflows{at}")
    if overflows:
        parts.append(f"{overflows} microphone overflows")
    if parts:
        moved = voice.hearing.delay.corrections if voice.hearing is not None else 0
        print(
            f"coach: audio glitches: {', '.join(parts)}; the echo delay was re-measured "
            f"{moved} times",
            file=sys.stderr,
        )


def _run_live(
    args: argparse.Namespace, routine: Routine, profile: VoiceProfile, options: TimelineOptions
) -> int:
    from coach.audio import favour_audio_callbacks

    with favour_audio_callbacks():
        return _run_live_session(args, routine, profile, options)


def _run_live_session(
    args: argparse.Namespace, routine: Routine, profile: VoiceProfile, options: TimelineOptions
) -> int:
    from coach.audio import AudioUnavailable, Input, Output, probe_input
    from coach.journal import Journal, SessionLog
    from coach.live import (
        EchoReference,
        OutputSpeaker,
        PlayedSentences,
        SynthesizedSounds,
        VoiceControl,
        monotonic_ms,
        run_loop,
    )
    from coach.session import Session, SessionSettings
    from coach.speech import Synthesizer
    from coach.status import StatusLine

    started_ms = monotonic_ms()
    reference = EchoReference()
    played = PlayedSentences()
    voice: VoiceControl | None = None
    notice: str | None = None
    if args.no_listen:
        notice = NO_LISTEN_NOTICE
    else:
        mic = probe_input(args.input)
        if not mic.ok:
            notice = NO_MICROPHONE_NOTICE
            print(
                f"coach: no microphone ({mic.reason}); running without voice control",
                file=sys.stderr,
            )
        else:
            language = _language(args, routine)
            engine, model, device = args.engine, args.model, mic.device

            def open_microphone(hearing: Any) -> Input:
                return Input(device, on_block=hearing.on_block, on_lost=hearing.on_lost)

            recording = None
            if args.record_audio is not None:
                from coach.listen_recording import ListenRecording

                recording = ListenRecording(args.record_audio)
            voice = VoiceControl(
                lambda: open_listener(engine, model, language),
                open_microphone,
                reference,
                played,
                recording,
            )
            # Load now, while the speech is prepared and before the speaker starts: some
            # engines hold the interpreter lock while they load (the spotter's ONNX
            # sessions, ~170 ms), and the speaker's first blocks underflowed behind them.
            voice.start()

    journal = Journal()
    synthesizer: Synthesizer | None = None
    output: Output | None = None
    try:
        for entry in journal.close_unfinished():
            print(
                f"coach: the session of {entry.started_at:%Y-%m-%d %H:%M} did not finish; "
                "it is marked unfinished in the journal",
                file=sys.stderr,
            )
        today = _dose_today(journal)
        options = TimelineOptions(
            pace=options.pace,
            side_first=options.side_first,
            affected_leg=options.affected_leg,
            voice_id=options.voice_id,
            rate_wpm=options.rate_wpm,
            returning_user=bool(journal.recent_sessions(days=3650, limit=1)),
        )
        synthesizer = Synthesizer(profile)
        speech_ms = _measuring(synthesizer)
        _prepare_speech(routine, options, speech_ms, synthesizer)

        def compile_measured(r: Routine, o: TimelineOptions) -> Timeline:
            return compile_timeline(r, o, speech_ms=speech_ms)

        try:
            output = Output(args.output, reference=reference.add, on_event=played.on_event)
        except AudioUnavailable as err:
            if voice is not None:
                voice.close()
            return _render_instead(args, routine, reason=err.message)
        if voice is not None and _needs_an_early_answer(routine, options, today):
            voice.wait(10.0)  # the shorter-session question comes first: be ready to hear
        settings = SessionSettings(listening=voice is not None, notice=notice)
        record = SessionLog(
            journal,
            routine.id,
            {
                "voice": profile.id,
                "pace": options.pace,
                "affected_leg": options.affected_leg.value,
                "listening": voice is not None,
            },
        )
        session = Session(
            routine,
            options,
            compile_measured,
            OutputSpeaker(output),
            SynthesizedSounds(synthesizer),
            record,
            settings=settings,
            today=today,
        )
        with StatusLine() as status, _sigterm_as_interrupt():
            result = run_loop(session, output, voice, status)
        if result.voice_failure:
            print(f"coach: voice control is off: {result.voice_failure}", file=sys.stderr)
        if voice is not None and voice.hearing is not None and voice.hearing.lag_ms > 500:
            print(
                f"coach: the listener fell up to {voice.hearing.lag_ms} ms behind the "
                "microphone (a busy CPU); commands were heard late",
                file=sys.stderr,
            )
        _report_glitches(output, voice)
        if voice is not None and voice.recording is not None:
            where = voice.recording.folder
            failure = voice.recording.failure
            lag = f"; it fell up to {voice.hearing.lag_ms} ms behind" if voice.hearing else ""
            print(
                f"coach: the listener's audio is in {where}"
                + (f" ({failure})" if failure else "")
                + lag,
                file=sys.stderr,
            )
        if result.first_sound_ms is not None:
            first_ms = result.first_sound_ms - started_ms
            print(f"coach: first word after {first_ms} ms", file=sys.stderr)
    finally:
        if voice is not None:
            voice.close()
        if output is not None:
            output.close()
        if synthesizer is not None:
            synthesizer.close()
        journal.close()
    reps = ", ".join(f"{leg.value} {count}" for leg, count in sorted(session.reps_done.items()))
    outcome = result.outcome.value if result.outcome else "unknown"
    print(f"Session ended: {outcome}." + (f" Reps: {reps}." if reps else ""))
    if result.problem:
        print(f"coach: {result.problem}", file=sys.stderr)
        return 1
    if result.interrupted:
        print("coach: session stopped; what was done is in the journal", file=sys.stderr)
        return 130
    return 0


def _needs_an_early_answer(routine: Routine, options: TimelineOptions, today: Any) -> bool:
    from coach.session import fitting_reps_cap

    return fitting_reps_cap(routine, options, today) not in (None, 0)


def _prepare_speech(
    routine: Routine,
    options: TimelineOptions,
    speech_ms: Callable[[str], int],
    synthesizer: Any,
) -> None:
    """Synthesize (or load from the cache) every sentence before the first word is said.

    The timeline needs each sentence's measured length; the session's own urgent
    sentences (the safety message, 'Paused.') must be ready the moment they are needed.
    """
    from coach.session import Messages

    estimate = compile_timeline(routine, options)
    sentences = [c.text for c in estimate.cues if c.kind is CueKind.SAY and c.text]
    distinct = list(dict.fromkeys(sentences))
    cold = [text for text in distinct if not _cached(synthesizer, text)]
    if len(cold) > 5:
        print(
            f"coach: preparing speech ({len(cold)} new sentences; later runs start at once)",
            file=sys.stderr,
        )
    begin = time.monotonic()
    for text in distinct:
        speech_ms(text)
    messages = Messages()
    for text in (messages.safety, messages.paused, messages.after_pain_offer, messages.resumed):
        synthesizer.synthesize(text)
    if cold:
        print(f"coach: speech ready in {time.monotonic() - begin:.1f} s", file=sys.stderr)


def _cached(synthesizer: Any, text: str) -> bool:
    cache = getattr(synthesizer, "cache", None)
    if cache is None:
        return False
    try:
        path = cache.path_for(synthesizer.cache_key(text))
    except AttributeError:
        return True
    return bool(Path(path).exists())
