"""The rendered track: a timeline mixed into one levelled, chaptered audio file.

Every SAY cue's phrase and every TONE cue's earcon is placed at exactly its
``at_ms``; everything else is silence. The track is levelled to -16 LUFS with
true peaks at most -1 dBTP, encoded (WAV, FLAC, OGG Vorbis or MP3), tagged with
title, artist and one chapter per exercise, and only then moved into place.

The track is never mixed in memory: a session is a few dozen distinct sounds
placed many times, so each is levelled once (its loudness and true peak in the
placed track computed exactly, see ``coach.loudness``) and the encoder is fed a
block at a time made straight from the placed sounds (:class:`PlacedTrack`).

Sample rate: 22,050 Hz mono, the native rate of espeak-ng. Speech carries
almost nothing above 8 kHz, the earcons sit between 400 and 2,000 Hz, and
keeping the synthesizer's rate means phrases are placed without resampling
(exact sample offsets, no filter delay). 22,050 Hz is also a standard MPEG-2
layer III rate, so the same PCM goes into every format.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import soundfile
from scipy.signal import resample_poly

from coach import loudness
from coach.chapters import Chapter, chapters_from_timeline, cue_sheet, tag_file
from coach.encode import AudioFormat, audio_format, write_audio
from coach.errors import CoachError
from coach.timeline import Cue, CueKind, Earcon, Timeline

Pcm = npt.NDArray[np.float32]

TRACK_SAMPLE_RATE_HZ = 22050
"""Sample rate of every rendered track (see the module docstring for why)."""
DEFAULT_ARTIST = "coach"

PHRASE_OVERRUN_TOLERANCE_MS = 2
"""A phrase may end this much after its cue: measured lengths are rounded to whole ms."""
LEVEL_STEPS = 3
"""Progress steps reported while levelling (sounds ready, shaped, levelled)."""
LOSSY_HEADROOM_DB = 1.0
"""Extra true-peak headroom for MP3 and Vorbis, whose decoded peaks overshoot the input."""


class TrackError(CoachError):
    """The track could not be rendered or written (one line, exit status 2)."""


class SpokenPhrase(Protocol):
    """What the renderer needs from a synthesized phrase."""

    @property
    def pcm(self) -> Pcm:
        """Mono float32 samples in [-1, 1]."""
        ...

    @property
    def sample_rate_hz(self) -> int:
        """Rate of ``pcm``."""
        ...


class PhraseSource(Protocol):
    """What the renderer needs from a synthesizer (``coach.speech.Synthesizer`` fits)."""

    def synthesize(self, text: str) -> SpokenPhrase:
        """The phrase for ``text``."""
        ...


EarconSource = Callable[[Earcon, int], Pcm]
"""``earcon(kind, sample_rate_hz)``: the tone's samples, exactly its TONE cue long."""


class RenderStage(StrEnum):
    """What the renderer is doing, for progress reports."""

    MIX = "mixing speech"
    LEVEL = "levelling loudness"
    ENCODE = "encoding"


RenderProgress = Callable[[RenderStage, int, int], None]
"""``progress(stage, done, total)``, called as each stage advances."""


@dataclass(frozen=True, slots=True)
class RenderSummary:
    """What was written."""

    path: Path
    fmt: AudioFormat
    duration_ms: int
    """Length of the audio written (equals the timeline's total)."""
    sample_rate_hz: int
    chapters: tuple[Chapter, ...]
    size_bytes: int
    phrases: int
    """SAY cues placed (repeats included)."""
    loudness_lufs: float
    true_peak_dbtp: float
    cue_sheet: Path | None = None
    """The ``.cue`` file written beside a WAV."""


def samples_at(ms: int, sample_rate_hz: int = TRACK_SAMPLE_RATE_HZ) -> int:
    """The sample index of offset ``ms`` (rounded to the nearest sample)."""
    return (ms * sample_rate_hz + 500) // 1000


def _at_rate(pcm: Pcm, from_hz: int, to_hz: int) -> Pcm:
    if from_hz == to_hz:
        return pcm
    common = math.gcd(from_hz, to_hz)
    return np.asarray(resample_poly(pcm, to_hz // common, from_hz // common), np.float32)


SoundKey = tuple[CueKind, str]
"""A distinct sound of the track: ``(SAY, text)`` or ``(TONE, earcon kind)``."""


def _sound_key(cue: Cue) -> SoundKey | None:
    if cue.kind is CueKind.SAY and cue.text:
        return (CueKind.SAY, cue.text)
    if cue.kind is CueKind.TONE and cue.earcon is not None:
        return (CueKind.TONE, cue.earcon.value)
    return None


def collect_sounds(
    timeline: Timeline,
    synthesizer: PhraseSource,
    earcons: EarconSource,
    *,
    sample_rate_hz: int = TRACK_SAMPLE_RATE_HZ,
    progress: RenderProgress | None = None,
) -> dict[SoundKey, Pcm]:
    """Every distinct phrase and earcon of the timeline, at ``sample_rate_hz``.

    Raises TrackError if a phrase is longer than its cue: the timeline was then
    compiled with estimated rather than measured speech lengths, and the next
    cue would talk over it.
    """
    sounding = [cue for cue in timeline.cues if _sound_key(cue) is not None]
    sounds: dict[SoundKey, Pcm] = {}
    for done, cue in enumerate(sounding, start=1):
        key = _sound_key(cue)
        assert key is not None
        pcm = sounds.get(key)
        if pcm is None:
            if cue.kind is CueKind.SAY:
                phrase = synthesizer.synthesize(key[1])
                pcm = _at_rate(
                    np.asarray(phrase.pcm, np.float32), phrase.sample_rate_hz, sample_rate_hz
                )
            else:
                pcm = np.asarray(earcons(Earcon(key[1]), sample_rate_hz), np.float32)
            sounds[key] = pcm
        allowed = samples_at(cue.duration_ms + PHRASE_OVERRUN_TOLERANCE_MS, sample_rate_hz)
        if len(pcm) > allowed:
            lasts_ms = len(pcm) * 1000 // sample_rate_hz
            raise TrackError(
                f"{key[1][:40]!r} lasts {lasts_ms} ms but its cue at {cue.at_ms} ms allows "
                f"{cue.duration_ms} ms; compile the timeline with speech_ms=synthesizer.speech_ms"
            )
        if progress:
            progress(RenderStage.MIX, done, len(sounding))
    return sounds


def mix_timeline(
    timeline: Timeline,
    sounds: Mapping[SoundKey, Pcm],
    *,
    sample_rate_hz: int = TRACK_SAMPLE_RATE_HZ,
    out: Pcm | None = None,
) -> Pcm:
    """The timeline as mono float32 PCM, ``total_ms`` long: each sound at its cue's offset.

    ``out`` (the right length) is reused instead of allocating a new track.
    """
    n = samples_at(timeline.total_ms, sample_rate_hz)
    if out is None or len(out) != n:
        out = np.zeros(n, np.float32)
    else:
        out.fill(0.0)
    for cue in timeline.cues:
        key = _sound_key(cue)
        if key is None:
            continue
        pcm = sounds[key]
        start = samples_at(cue.at_ms, sample_rate_hz)
        stop = min(n, start + len(pcm))
        if stop > start:
            out[start:stop] += pcm[: stop - start]
    return out


def check_output(out_path: Path, fmt: str | None = None) -> AudioFormat:
    """The format for ``out_path``; TrackError now if it cannot be written there.

    Called before the (slow) synthesis so a typo in the path fails at once.
    """
    if out_path.is_dir():
        raise TrackError(f"cannot write {out_path}: it is a directory")
    chosen = audio_format(out_path, fmt)
    folder = out_path.parent if str(out_path.parent) else Path(".")
    if not folder.is_dir():
        raise TrackError(f"cannot write {out_path}: folder {folder} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".coach-probe-"):
            pass
    except OSError as err:
        raise TrackError(f"cannot write to {folder}: {err.strerror or err}") from err
    return chosen


class PlacedTrack:
    """The whole track as sounds placed in silence, made a slice at a time on demand.

    Behaves like the mixed track for ``len()`` and ``track[start:stop]`` (a new
    float32 array: silence plus the parts of the sounds that fall in the slice),
    so it can be encoded block by block without ever holding the track in memory.
    """

    def __init__(
        self, sounds: Mapping[SoundKey, Pcm], placements: list[tuple[int, SoundKey]], n: int
    ) -> None:
        self._sounds = sounds
        ordered = sorted(placements, key=lambda placement: placement[0])
        self._starts = np.array([start for start, _ in ordered], np.int64)
        self._keys = [key for _, key in ordered]
        self._longest = max((len(sounds[key]) for key in self._keys), default=0)
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: slice, /) -> Pcm:
        start, stop, stride = index.indices(self._n)
        if stride != 1:
            raise ValueError("a placed track is read in contiguous slices")
        out = np.zeros(max(0, stop - start), np.float32)
        # Placements are sorted by start; any that reach into [start, stop) begins
        # at most one longest sound before it.
        first = int(np.searchsorted(self._starts, start - self._longest, side="right"))
        last = int(np.searchsorted(self._starts, stop, side="left"))
        for at, key in zip(self._starts[first:last], self._keys[first:last], strict=True):
            pcm = self._sounds[key]
            lo, hi = max(start, int(at)), min(stop, int(at) + len(pcm))
            if hi > lo:
                # Added, not copied: a phrase may run up to 2 ms into the next sound.
                out[lo - start : hi - start] += pcm[lo - int(at) : hi - int(at)]
        return out


def placements_of(
    timeline: Timeline, sample_rate_hz: int = TRACK_SAMPLE_RATE_HZ
) -> list[tuple[int, SoundKey]]:
    """``(start sample, sound)`` for every SAY and TONE cue of the timeline."""
    return [
        (samples_at(cue.at_ms, sample_rate_hz), key)
        for cue, key in zip(timeline.cues, map(_sound_key, timeline.cues), strict=True)
        if key is not None
    ]


def render_track(
    timeline: Timeline,
    synthesizer: PhraseSource,
    out_path: Path,
    *,
    fmt: str | None = None,
    small_speaker: bool = False,
    title: str | None = None,
    artist: str = DEFAULT_ARTIST,
    progress: RenderProgress | None = None,
    earcons: EarconSource | None = None,
) -> RenderSummary:
    """Render ``timeline`` to ``out_path`` atomically and describe what was written.

    The caller compiles the timeline with ``speech_ms=synthesizer.speech_ms`` so
    each SAY cue is exactly as long as its phrase. Each distinct sound is levelled
    once (its loudness and true peak computed exactly for the placed track, see
    ``coach.loudness``) and the track is encoded a block at a time straight from
    the placed sounds. Output goes to a temporary file in the target folder and is
    renamed into place only when complete: on any failure nothing is left behind
    and TrackError (one line) is raised.
    """
    out_path = Path(out_path)
    chosen = check_output(out_path, fmt)
    if earcons is None:
        from coach.earcons import earcon

        earcons = earcon
    title = title or timeline.title
    chapters = chapters_from_timeline(timeline)

    rate = TRACK_SAMPLE_RATE_HZ
    sounds = collect_sounds(timeline, synthesizer, earcons, progress=progress)
    n = samples_at(timeline.total_ms, rate)
    placements = placements_of(timeline, rate)
    if progress:
        progress(RenderStage.LEVEL, 1, LEVEL_STEPS)
    if small_speaker:
        sounds = {key: loudness.high_pass(pcm, rate) for key, pcm in sounds.items()}
        placed = loudness.PlacedLoudness(sounds, placements, n, rate, estimates=False)
        level_db = loudness.TARGET_LUFS - placed.lufs()
        if math.isfinite(level_db):
            level = loudness.db_to_gain(level_db)
            sounds = {key: loudness.compressed(pcm, rate, level) for key, pcm in sounds.items()}
    if progress:
        progress(RenderStage.LEVEL, 2, LEVEL_STEPS)
    # A hair of margin even for lossless formats: 16-bit rounding moves peaks slightly.
    ceiling = loudness.MAX_TRUE_PEAK_DBTP - (LOSSY_HEADROOM_DB if chosen.lossy else 0.05)
    levelled, report = loudness.level_sounds(
        sounds, placements, n, rate, target_lufs=loudness.TARGET_LUFS, ceiling_dbtp=ceiling
    )
    del sounds
    if progress:
        progress(RenderStage.LEVEL, LEVEL_STEPS, LEVEL_STEPS)
    track = PlacedTrack(levelled, placements, n)
    placed_phrases = sum(1 for cue in timeline.cues if cue.kind is CueKind.SAY and cue.text)

    cue_path = _cue_path(out_path) if chosen is AudioFormat.WAV else None
    written = 0

    def encode_step(samples: int) -> None:
        nonlocal written
        written += samples
        if progress:
            progress(RenderStage.ENCODE, written, n)

    temps: list[Path] = []
    try:
        audio_tmp = _temp_beside(out_path)
        temps.append(audio_tmp)
        write_audio(audio_tmp, track, rate, chosen, title=title, artist=artist, step=encode_step)
        tag_file(audio_tmp, chosen, chapters, title=title, artist=artist)
        if cue_path is not None:
            cue_tmp = _temp_beside(cue_path)
            temps.append(cue_tmp)
            text = cue_sheet(chapters, out_path.name, title=title, artist=artist)
            cue_tmp.write_text(text, encoding="utf-8")
        size = audio_tmp.stat().st_size
        os.replace(audio_tmp, out_path)
        temps.remove(audio_tmp)
        if cue_path is not None:
            try:
                os.replace(temps[0], cue_path)
            except OSError:
                out_path.unlink(missing_ok=True)
                raise
            temps.clear()
    except (OSError, soundfile.LibsndfileError, RuntimeError) as err:
        raise TrackError(_write_error(out_path, err)) from err
    finally:
        for temp in temps:
            with contextlib.suppress(OSError):
                temp.unlink()
    return RenderSummary(
        path=out_path,
        fmt=chosen,
        duration_ms=n * 1000 // rate,
        sample_rate_hz=rate,
        chapters=tuple(chapters),
        size_bytes=size,
        phrases=placed_phrases,
        loudness_lufs=report.loudness_lufs,
        true_peak_dbtp=report.true_peak_dbtp,
        cue_sheet=cue_path,
    )


def _cue_path(out_path: Path) -> Path:
    """The cue sheet beside a WAV: same name, ``.cue`` extension (never the WAV itself)."""
    cue_path = out_path.with_suffix(".cue")
    return cue_path if cue_path != out_path else out_path.with_name(out_path.name + ".cue")


def _temp_beside(path: Path) -> Path:
    """A new empty file in ``path``'s folder (same file system, so the rename is atomic).

    Created with mode 0o666 minus the umask, like any file the user creates (mkstemp's
    0o600 would make the finished track private).
    """
    for _ in range(100):
        temp = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
        try:
            handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(handle)
        return temp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def _write_error(path: Path, err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return f"cannot write {path}: no space left on the device"
    if isinstance(err, OSError):
        return f"cannot write {path}: {err.strerror or err}"
    detail = " ".join(str(err).split()) or type(err).__name__
    if "space" in detail.lower():
        return f"cannot write {path}: no space left on the device"
    return f"cannot write {path}: {detail}"
