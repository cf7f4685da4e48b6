"""``coach listen``: hear commands from the microphone or a WAV file, for diagnostics."""

from __future__ import annotations

import argparse
import json
import queue
import sys
from bisect import bisect_right
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from coach.errors import CoachError
from coach.listen.commands import CommandEvent
from coach.listen.engine import SAMPLE_RATE_HZ, PcmBlock
from coach.listen.listener import Listener
from coach.listen.select import ENGINE_NAMES, build_engine, choose_engine
from coach.listen.vocabulary import available_languages, load_vocabulary
from coach.listen_recording import (
    GAP_MEASURED,
    MIC_CHANNEL,
    REFERENCE_CHANNEL,
    SPEAKER_GAP,
    EchoChange,
    read_notes,
)
from coach.resample import resample

BLOCK_SAMPLES = 320
"""20 ms blocks, as the live session feeds them."""
TAIL_MS = 1000
"""Silence fed after a WAV file, so a word at its very end is still decided."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``listen`` subcommand."""
    parser = sub.add_parser(
        "listen",
        help="hear spoken commands (microphone or WAV) and print them",
        description="Recognize spoken commands offline and print each with its timing "
        "(word end and detection, in the input's clock) and confidence. From the "
        "microphone until Ctrl-C, or from a WAV file as fast as the engine allows.",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINE_NAMES,
        default="auto",
        help="recognition engine (auto: Vosk if a model is installed)",
    )
    parser.add_argument("--model", type=Path, help="Vosk model folder")
    parser.add_argument(
        "--language",
        default="en",
        help="command language (%(default)s); one of " + ", ".join(available_languages()),
    )
    parser.add_argument(
        "--vocabulary",
        type=Path,
        help="user vocabulary file (default: <config dir>/vocabulary.yaml)",
    )
    parser.add_argument("--wav", type=Path, help="read this WAV file instead of the microphone")
    parser.add_argument(
        "--with-reference",
        action="store_true",
        help="the WAV is a 'coach run --record-audio' recording: channel 2 is the echo "
        "reference, and the sentences noted beside it are replayed too",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per command on stdout")
    parser.set_defaults(func=run)


def _read_audio(path: Path, dtype: str) -> tuple[np.ndarray[Any, Any], int]:
    """(frames x channels, rate) of an audio file, or a CoachError naming it."""
    import soundfile as sf

    if not path.is_file():
        raise CoachError(f"WAV file not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype=dtype, always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise CoachError(f"cannot read {path} as audio: {err}") from err
    return data, int(rate)


def read_wav(path: Path) -> PcmBlock:
    """A WAV file as 16 kHz mono int16 (channels averaged, resampled if needed)."""
    data, rate = _read_audio(path, "float32")
    mono = resample(data.mean(axis=1), rate, SAMPLE_RATE_HZ)
    pcm: PcmBlock = np.clip(np.round(mono * 32767.0), -32768, 32767).astype(np.int16)
    return pcm


def read_recording(path: Path) -> tuple[PcmBlock, PcmBlock]:
    """(microphone, echo reference) from a ``coach run --record-audio`` WAV."""
    data, rate = _read_audio(path, "int16")
    if data.shape[1] != 2 or rate != SAMPLE_RATE_HZ:
        raise CoachError(
            f"{path}: expected a recording from 'coach run --record-audio' (2 channels at "
            f"{SAMPLE_RATE_HZ} Hz), got {data.shape[1]} channel(s) at {rate} Hz"
        )
    return data[:, MIC_CHANNEL].copy(), data[:, REFERENCE_CHANNEL].copy()


def _tell(listener: Listener, change: EchoChange) -> None:
    """Tell the listener what the live session told it about the echo (a recording's note)."""
    if change.kind == SPEAKER_GAP:
        listener.speaker_gap()
    elif change.kind == GAP_MEASURED:
        listener.gap_measured()
    else:
        listener.reference_moved(change.correction)


def _playing_at(changes: list[tuple[int, str | None]], times_ms: list[int], ms: int) -> str | None:
    """The sentence playing at ``ms``; ``times_ms`` are the changes' times, in order."""
    index = bisect_right(times_ms, ms) - 1
    return changes[index][1] if index >= 0 else None


def silence_lead_ms(warmup_ms: int) -> int:
    """The silence fed before a file for an engine's warm-up: whole 20 ms blocks."""
    block_ms = BLOCK_SAMPLES * 1000 // SAMPLE_RATE_HZ
    return -(-warmup_ms // block_ms) * block_ms


def _feed_silence(
    listener: Listener, ms: int, *, with_reference: bool = False
) -> list[CommandEvent]:
    """Feed ``ms`` of digital silence in 20 ms blocks; the commands it completed."""
    block = np.zeros(BLOCK_SAMPLES, np.int16)
    events: list[CommandEvent] = []
    for _ in range(ms * SAMPLE_RATE_HZ // 1000 // BLOCK_SAMPLES):
        events += listener.feed(block, block if with_reference else None)
    return events


def _shifted(event: CommandEvent, lead_ms: int) -> CommandEvent:
    """``event`` in the file's clock, when ``lead_ms`` of silence was fed before the file."""
    return replace(
        event,
        word_end_ms=event.word_end_ms - lead_ms,
        detected_ms=event.detected_ms - lead_ms,
    )


def _print_event(event: CommandEvent, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event.to_json(), ensure_ascii=False), flush=True)
    else:
        print(
            f"{event.command.value:<8} {event.phrase!r:<16} confidence {event.confidence:.2f}"
            f"  word end {event.word_end_ms / 1000:8.3f} s"
            f"  detected {event.detected_ms / 1000:8.3f} s (+{event.latency_ms} ms)",
            flush=True,
        )


def _meter(level_dbfs: float, events: int) -> str:
    width = 30
    filled = max(0, min(width, round((level_dbfs + 60.0) / 60.0 * width)))
    return f"\r[{'#' * filled}{' ' * (width - filled)}] {level_dbfs:6.1f} dBFS  {events} heard"


def _listen_microphone(listener: Listener, as_json: bool) -> int:
    from coach.audio import Input

    meter = sys.stderr.isatty()
    heard = 0
    with Input() as mic:
        if not mic.wait_first_block(5.0):
            raise CoachError("the microphone delivered no audio within 5 s")
        print("listening (Ctrl-C to stop)", file=sys.stderr)
        try:
            while True:
                mic.check()
                try:
                    block = mic.blocks.get(timeout=0.5)
                except queue.Empty:
                    continue
                for event in listener.feed(block.pcm):
                    heard += 1
                    if meter:
                        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
                    _print_event(event, as_json)
                if meter:
                    print(_meter(block.level_dbfs, heard), end="", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            pass
    if meter:
        print(file=sys.stderr)
    for event in listener.finish():
        _print_event(event, as_json)
    return 0


def run(args: argparse.Namespace) -> int:
    """Build the engine, then print each command heard."""
    vocabulary = load_vocabulary(args.language, args.vocabulary)
    choice = choose_engine(args.engine, args.language, args.model)
    if args.with_reference and args.wav is None:
        raise CoachError("--with-reference needs --wav (a 'coach run --record-audio' recording)")
    reference: PcmBlock | None = None
    changes: list[tuple[int, str | None]] = []
    echo: list[EchoChange] = []
    if args.wav is not None and args.with_reference:
        pcm, reference = read_recording(args.wav)
        changes, echo = read_notes(args.wav)
    elif args.wav is not None:
        pcm = read_wav(args.wav)
    print(f"engine: {choice.reason}", file=sys.stderr)
    listener = Listener(build_engine(choice, vocabulary))
    if args.wav is None:
        return _listen_microphone(listener, args.json)
    # An engine that needs audio before its first word (the spotter's window) hears
    # silence first, and silence after: a bare one-word clip is heard, and times stay in
    # the file's clock.
    lead_ms = silence_lead_ms(listener.engine.warmup_ms)
    for event in _feed_silence(listener, lead_ms):
        _print_event(_shifted(event, lead_ms), args.json)
    pending = sorted(echo, key=lambda change: change.sample)[::-1]  # file order within a block
    change_times_ms = [at for at, _ in changes]
    for start in range(0, len(pcm), BLOCK_SAMPLES):
        block = pcm[start : start + BLOCK_SAMPLES]
        played = reference[start : start + BLOCK_SAMPLES] if reference is not None else None
        text = _playing_at(changes, change_times_ms, start * 1000 // SAMPLE_RATE_HZ)
        while pending and pending[-1].sample < start + len(block):
            _tell(listener, pending.pop())  # the live session told it before that block
        for event in listener.feed(block, played, text):
            _print_event(_shifted(event, lead_ms), args.json)
    for event in _feed_silence(listener, TAIL_MS, with_reference=reference is not None):
        _print_event(_shifted(event, lead_ms), args.json)
    for event in listener.finish():
        _print_event(_shifted(event, lead_ms), args.json)
    return 0
