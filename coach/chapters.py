"""Chapters of the rendered track: one per exercise, written the way each format expects.

MP3 gets ID3v2 CHAP frames under a CTOC table of contents; OGG and FLAC get the
Vorbis-comment convention (``CHAPTER001=HH:MM:SS.mmm``, ``CHAPTER001NAME=...``);
WAV gets a ``.cue`` sheet beside it (``INDEX 01 mm:ss:ff``, 75 frames a second).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mutagen.flac
import mutagen.id3
import mutagen.oggvorbis

from coach.encode import AudioFormat
from coach.timeline import CueKind, Timeline

# mutagen's ID3 frames and tag mappings are untyped; keep them out of mypy's way here.
_id3: Any = mutagen.id3
_flac: Any = mutagen.flac
_oggvorbis: Any = mutagen.oggvorbis

INTRO_TITLE = "Introduction"
"""Title of the chapter before the first exercise (safety notes, how to use coach)."""
CUE_FRAMES_PER_S = 75
"""Cue sheets count time in CD frames."""


@dataclass(frozen=True, slots=True)
class Chapter:
    """A named stretch of the track."""

    title: str
    start_ms: int
    end_ms: int


def chapters_from_timeline(timeline: Timeline) -> list[Chapter]:
    """One chapter per CHAPTER cue, plus an introduction if the first starts later than 0."""
    starts = [
        (cue.at_ms, cue.text or "Exercise") for cue in timeline.cues if cue.kind is CueKind.CHAPTER
    ]
    if not starts:
        return [Chapter(timeline.title or INTRO_TITLE, 0, timeline.total_ms)]
    if starts[0][0] > 0:
        starts.insert(0, (0, INTRO_TITLE))
    ends = [start for start, _ in starts[1:]] + [timeline.total_ms]
    return [Chapter(title, start, end) for (start, title), end in zip(starts, ends, strict=True)]


def vorbis_time(ms: int) -> str:
    """``HH:MM:SS.mmm`` as in the Vorbis chapter extension."""
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def cue_time(ms: int) -> str:
    """``mm:ss:ff`` as in a cue sheet INDEX (minutes may exceed 99)."""
    frames_total = (ms * CUE_FRAMES_PER_S + 500) // 1000
    seconds, frames = divmod(frames_total, CUE_FRAMES_PER_S)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes:02d}:{seconds:02d}:{frames:02d}"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "'").replace("\n", " ") + '"'


def cue_sheet(chapters: list[Chapter], audio_name: str, *, title: str, artist: str) -> str:
    """A cue sheet for a WAV file named ``audio_name``: one track per chapter."""
    lines = [
        f"PERFORMER {_quoted(artist)}",
        f"TITLE {_quoted(title)}",
        f"FILE {_quoted(audio_name)} WAVE",
    ]
    for number, chapter in enumerate(chapters, start=1):
        lines += [
            f"  TRACK {number:02d} AUDIO",
            f"    TITLE {_quoted(chapter.title)}",
            f"    PERFORMER {_quoted(artist)}",
            f"    INDEX 01 {cue_time(chapter.start_ms)}",
        ]
    return "\n".join(lines) + "\n"


def tag_file(
    path: Path, fmt: AudioFormat, chapters: list[Chapter], *, title: str, artist: str
) -> None:
    """Write title, artist and chapters into the encoded file at ``path``.

    WAV carries its title and artist in RIFF INFO (written by the encoder); its
    chapters go in the cue sheet, written separately.
    """
    if fmt is AudioFormat.MP3:
        _tag_mp3(path, chapters, title=title, artist=artist)
    elif fmt is AudioFormat.OGG:
        _tag_vorbis(_oggvorbis.OggVorbis(path), chapters, title=title, artist=artist)
    elif fmt is AudioFormat.FLAC:
        _tag_vorbis(_flac.FLAC(path), chapters, title=title, artist=artist)


def _tag_vorbis(audio: Any, chapters: list[Chapter], *, title: str, artist: str) -> None:
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    for key in [key for key in tags.keys() if key.upper().startswith("CHAPTER")]:  # noqa: SIM118
        del tags[key]
    tags["TITLE"] = title
    tags["ARTIST"] = artist
    for number, chapter in enumerate(chapters, start=1):
        tags[f"CHAPTER{number:03d}"] = vorbis_time(chapter.start_ms)
        tags[f"CHAPTER{number:03d}NAME"] = chapter.title
    audio.save()


def _tag_mp3(path: Path, chapters: list[Chapter], *, title: str, artist: str) -> None:
    try:
        tags = _id3.ID3(path)
    except _id3.ID3NoHeaderError:
        tags = _id3.ID3()
    tags.delall("CHAP")
    tags.delall("CTOC")
    tags.add(_id3.TIT2(encoding=3, text=[title]))
    tags.add(_id3.TPE1(encoding=3, text=[artist]))
    element_ids = [f"chp{number}" for number in range(1, len(chapters) + 1)]
    tags.add(
        _id3.CTOC(
            element_id="toc",
            flags=_id3.CTOCFlags.TOP_LEVEL | _id3.CTOCFlags.ORDERED,
            child_element_ids=element_ids,
            sub_frames=[_id3.TIT2(encoding=3, text=[title])],
        )
    )
    for element_id, chapter in zip(element_ids, chapters, strict=True):
        tags.add(
            _id3.CHAP(
                element_id=element_id,
                start_time=chapter.start_ms,
                end_time=chapter.end_ms,
                # No byte offsets: players seek by time (0xFFFFFFFF means "unused").
                start_offset=0xFFFFFFFF,
                end_offset=0xFFFFFFFF,
                sub_frames=[_id3.TIT2(encoding=3, text=[chapter.title])],
            )
        )
    tags.save(path, v2_version=3)
