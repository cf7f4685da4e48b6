"""``coach render``: speak a whole session into an audio file to play on any device."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from coach.cli_options import (
    add_affected_leg_argument,
    add_pace_argument,
    add_routine_argument,
    add_side_first_argument,
)
from coach.encode import format_names
from coach.errors import CoachError
from coach.loader import DEFAULT_ROUTINE_ID, resolve_routine
from coach.timeline import (
    CueKind,
    Leg,
    Timeline,
    TimelineOptions,
    compile_timeline,
)
from coach.voices import DEFAULT_VOICE_ID, load_voice

if TYPE_CHECKING:  # coach.track pulls in scipy.signal (~1 s): load it only to render
    from coach.track import RenderStage, RenderSummary


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``render`` subcommand."""
    parser = sub.add_parser(
        "render",
        help="render a whole session to an audio file (wav, flac, ogg, mp3)",
        description="Speak a routine into one audio file with chapters per exercise, "
        "levelled to -16 LUFS, to play on a phone or any speaker, eyes closed.",
    )
    add_routine_argument(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=Path,
        help="audio file to write; the format follows the extension (default: ROUTINE.mp3)",
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        metavar="FORMAT",
        help=f"audio format, overriding the extension: {', '.join(format_names())}",
    )
    parser.add_argument(
        "--voice",
        default=DEFAULT_VOICE_ID,
        metavar="ID",
        help=f"voice profile (see 'coach voices'; default: {DEFAULT_VOICE_ID})",
    )
    add_pace_argument(parser)
    add_side_first_argument(parser)
    add_affected_leg_argument(parser, default_help="'your painful leg'")
    parser.add_argument(
        "--small-speaker",
        action="store_true",
        help="cut the bass and even out the level so speech carries on a tiny speaker",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render the routine to the output file and print a summary."""
    # Everything that can be wrong with the input is checked before the slow synthesis.
    routine = resolve_routine(args.routine or DEFAULT_ROUTINE_ID)
    out_path: Path = args.output or Path(f"{routine.id}.mp3")
    from coach.track import check_output, render_track

    check_output(out_path, args.fmt)
    profile = load_voice(args.voice)
    try:
        options = TimelineOptions(
            pace=args.pace,
            side_first=Leg(args.side_first),
            affected_leg=Leg(args.affected_leg) if args.affected_leg else Leg.AFFECTED,
            voice_id=profile.id,
        )
    except ValueError as err:
        raise CoachError(f"invalid option: {err}") from None
    # The estimated timeline says the same sentences; it tells the progress bar how many.
    estimate = compile_timeline(routine, options)
    sentences = {cue.text for cue in estimate.cues if cue.kind is CueKind.SAY and cue.text}

    from coach.speech import Synthesizer

    console = Console(stderr=True)
    with Synthesizer(profile) as synthesizer, _progress(console) as bar:
        task = bar.add_task("synthesizing speech", total=len(sentences))
        measured: dict[str, int] = {}

        def speech_ms(text: str) -> int:
            if text not in measured:
                measured[text] = synthesizer.speech_ms(text)
                bar.update(task, completed=len(measured))
            return measured[text]

        timeline = compile_timeline(routine, options, speech_ms=speech_ms)
        tasks: dict[RenderStage, TaskID] = {}

        def progress(stage: RenderStage, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage.value, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = render_track(
            timeline,
            synthesizer,
            out_path,
            fmt=args.fmt,
            small_speaker=args.small_speaker,
            title=routine.title,
            progress=progress,
        )
        stats = synthesizer.stats
    _print_summary(summary, timeline, cached=stats.hits, synthesized=stats.misses)
    return 0


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    """A progress bar on stderr, silent when stderr is not a terminal."""
    bar = Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        TaskProgressColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with bar:
        yield bar


def format_clock(ms: int) -> str:
    """``h:mm:ss`` or ``m:ss`` for a length or offset."""
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def format_size(size_bytes: int) -> str:
    """A file size for people: '812 kB', '12.3 MB'."""
    if size_bytes < 1_000_000:
        return f"{max(1, round(size_bytes / 1000))} kB"
    return f"{size_bytes / 1_000_000:.1f} MB"


def _print_summary(
    summary: RenderSummary, timeline: Timeline, *, cached: int, synthesized: int
) -> None:
    out = sys.stdout
    chapters = len(summary.chapters)
    out.write(f"Rendered {timeline.routine_id} ({timeline.title}) to {summary.path}\n")
    out.write(
        f"  duration  {format_clock(summary.duration_ms)} ({summary.duration_ms / 1000:.1f} s), "
        f"{chapters} chapter{'s' if chapters != 1 else ''}\n"
    )
    out.write(
        f"  file      {format_size(summary.size_bytes)}, {summary.fmt.value}, "
        f"{summary.sample_rate_hz} Hz mono, {summary.loudness_lufs:.1f} LUFS, "
        f"true peak {summary.true_peak_dbtp:.1f} dBTP\n"
    )
    out.write(
        f"  speech    {summary.phrases} phrases; {cached + synthesized} distinct: "
        f"{cached} from the cache, {synthesized} synthesized\n"
    )
    if summary.cue_sheet is not None:
        out.write(f"  cue sheet {summary.cue_sheet}\n")
    for chapter in summary.chapters:
        out.write(f"    {format_clock(chapter.start_ms):>8}  {chapter.title}\n")
