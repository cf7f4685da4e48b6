"""``coach enroll``: record the user saying each command a few times, for the spotter engine."""

from __future__ import annotations

import argparse
import queue
import sys
from collections.abc import Iterator

import numpy as np

from coach.errors import CoachError
from coach.listen.commands import Command
from coach.listen.engine import PcmBlock
from coach.listen.enroll import Enrollment, EnrollmentStore
from coach.listen.vad import Segmenter, Utterance
from coach.listen.vocabulary import load_vocabulary

DEFAULT_COMMANDS = (Command.STOP, Command.PAIN, Command.NEXT, Command.PAUSE, Command.RESUME,
                    Command.REPEAT, Command.HELP)
LISTEN_MS = 5000
"""How long to wait for each take."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``enroll`` subcommand."""
    parser = sub.add_parser(
        "enroll",
        help="record your voice saying each command (improves the offline spotter)",
        description="Say each command a few times when asked. The recordings are stored in "
        "coach's data folder and the 'spotter' engine then also matches your voice.",
    )
    parser.add_argument("--language", default="en", help="command language (%(default)s)")
    parser.add_argument("--takes", type=int, default=3, help="takes per command (%(default)s)")
    parser.add_argument(
        "--commands",
        default=",".join(c.value for c in DEFAULT_COMMANDS),
        help="comma-separated commands to record (%(default)s)",
    )
    parser.add_argument("--remove", action="store_true", help="delete your enrollment")
    parser.set_defaults(func=run)


def capture_take(blocks: Iterator[PcmBlock], listen_ms: int = LISTEN_MS) -> Utterance | None:
    """The first utterance in ``blocks`` within ``listen_ms`` of audio, if any."""
    segmenter = Segmenter()
    heard = 0
    for block in blocks:
        for utterance in segmenter.accept(block):
            return utterance
        heard += len(block) * 1000 // 16_000
        if heard >= listen_ms:
            break
    found = segmenter.flush()
    return found[0] if found else None


def run(args: argparse.Namespace) -> int:
    """Record, calibrate and store the enrollment."""
    store = EnrollmentStore()
    if args.remove:
        removed = store.remove(args.language)
        print("enrollment removed" if removed else "no enrollment to remove")
        return 0
    if args.takes < 1:
        raise CoachError("--takes must be at least 1")
    vocabulary = load_vocabulary(args.language)
    try:
        commands = [Command(c.strip().upper()) for c in args.commands.split(",") if c.strip()]
    except ValueError as err:
        raise CoachError(f"unknown command in --commands: {err}") from err
    from coach.audio import Input
    from coach.listen.embedding import FrontEnd
    from coach.listen.spotter import SpotterModel

    front_end, model = FrontEnd(), SpotterModel.load()
    enrollment = store.load(args.language) or Enrollment(args.language)
    with Input() as mic:
        if not mic.wait_first_block(5.0):
            raise CoachError("the microphone delivered no audio within 5 s")

        def blocks() -> Iterator[PcmBlock]:
            while True:
                mic.check()
                try:
                    yield np.asarray(mic.blocks.get(timeout=0.5).pcm, np.int16)
                except queue.Empty:
                    continue

        for command in commands:
            phrases = vocabulary.phrases.get(command)
            if not phrases:
                continue
            phrase = phrases[0]
            enrollment.templates.pop(phrase, None)
            for take in range(1, args.takes + 1):
                while not mic.blocks.empty():  # drop what was heard before the prompt
                    mic.blocks.get_nowait()
                print(f"say {phrase!r} ({take}/{args.takes})", file=sys.stderr, flush=True)
                utterance = capture_take(blocks())
                if utterance is None:
                    raise CoachError(f"heard nothing for {phrase!r}: check the microphone level")
                enrollment.add_take(phrase, utterance.pcm, front_end, model)
    limit = enrollment.calibrate()
    path = store.save(enrollment)
    print(f"stored {sum(len(t) for t in enrollment.templates.values())} takes of "
          f"{len(enrollment.templates)} phrases in {path.parent} (match distance {limit:.2f})")
    return 0
