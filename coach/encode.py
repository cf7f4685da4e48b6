"""Audio file formats for the rendered track, written with libsndfile (soundfile)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import soundfile

from coach.errors import CoachError


class AudioFormat(StrEnum):
    """A container/codec the track can be written in."""

    WAV = "wav"
    FLAC = "flac"
    OGG = "ogg"
    MP3 = "mp3"

    @property
    def lossy(self) -> bool:
        """Whether decoding gives back different samples (and so different peaks)."""
        return self in (AudioFormat.OGG, AudioFormat.MP3)


_SOUNDFILE: dict[AudioFormat, tuple[str, str]] = {
    AudioFormat.WAV: ("WAV", "PCM_16"),
    AudioFormat.FLAC: ("FLAC", "PCM_16"),
    AudioFormat.OGG: ("OGG", "VORBIS"),
    AudioFormat.MP3: ("MP3", "MPEG_LAYER_III"),
}
"""libsndfile major format and subtype for each format."""

_COMPRESSION: dict[AudioFormat, tuple[float, str | None]] = {
    # 16-bit is far below the noise of any playback of speech at -16 LUFS.
    AudioFormat.WAV: (0.0, None),
    AudioFormat.FLAC: (0.5, None),
    # Vorbis at its best quality setting: still only ~50 kb/s for mono speech.
    AudioFormat.OGG: (0.0, None),
    # Variable bitrate, ~45-55 kb/s for mono speech at 22.05 kHz (MPEG-2 layer III).
    # Measured: libsndfile's constant-bitrate mode comes out 0.5 LU quieter than its
    # input at every bitrate, variable mode within 0.1 LU.
    AudioFormat.MP3: (0.1, "VARIABLE"),
}

WRITE_BLOCK_SAMPLES = 1 << 14
"""Samples per write for the lossy encoders: libsndfile's Vorbis encoder crashes on very
large writes."""
PCM_BLOCK_SAMPLES = 1 << 16
"""Samples per write for 16-bit PCM (WAV, FLAC): fewer calls, still a small buffer."""
INT16_FULL_SCALE = 32768
"""16-bit samples are float samples times 32768, the scale libsndfile (and soundfile)
divide by when reading them back, so a sample decodes to the value that was written."""


class Samples(Protocol):
    """Mono float32 audio that can be read a slice at a time (an array, or a lazy track)."""

    def __len__(self) -> int:
        """Number of samples."""
        ...

    def __getitem__(self, index: slice, /) -> npt.NDArray[np.float32]:
        """Samples ``index.start`` to ``index.stop`` (step 1) as a float32 array."""
        ...


def to_int16(block: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    """Float samples in [-1, 1) as 16-bit PCM: scaled by 32768, rounded, clipped."""
    scaled = np.multiply(block, np.float32(INT16_FULL_SCALE), dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -INT16_FULL_SCALE, INT16_FULL_SCALE - 1, out=scaled)
    return scaled.astype(np.int16)


def format_names() -> list[str]:
    """The format names accepted by ``--format``."""
    return [fmt.value for fmt in AudioFormat]


def audio_format(path: Path, fmt: str | None = None) -> AudioFormat:
    """The format to write: ``fmt`` if given, else from the file extension."""
    name = (fmt if fmt is not None else path.suffix.removeprefix(".")).lower()
    if name == "oga":
        name = "ogg"
    try:
        return AudioFormat(name)
    except ValueError:
        choices = ", ".join(format_names())
        if fmt is None:
            raise CoachError(
                f"cannot tell the audio format from {path.name!r}: "
                f"use a .wav, .flac, .ogg or .mp3 name, or --format ({choices})"
            ) from None
        raise CoachError(f"unknown audio format {fmt!r} (choose from {choices})") from None


def write_audio(
    target: Path,
    pcm: Samples | npt.NDArray[np.float32],
    sample_rate_hz: int,
    fmt: AudioFormat,
    *,
    title: str,
    artist: str,
    step: Callable[[int], None] | None = None,
) -> None:
    """Encode mono float32 ``pcm`` into the file ``target`` (created or overwritten).

    ``pcm`` is read a block at a time, so it may be a lazy track that makes each
    block on demand (the whole track is never in memory). WAV and FLAC get 16-bit
    samples converted here (see :func:`to_int16`); MP3 and Vorbis are given floats.
    ``title``/``artist`` become the file's own tags (RIFF INFO in WAV, ID3 in MP3,
    Vorbis comments in OGG/FLAC). ``step(n)`` is told each time ``n`` samples are
    written. Failures (disk full) raise OSError or ``soundfile.LibsndfileError``; the
    caller removes the file.
    """
    major, subtype = _SOUNDFILE[fmt]
    level, bitrate_mode = _COMPRESSION[fmt]
    with soundfile.SoundFile(
        str(target),
        "w",
        samplerate=sample_rate_hz,
        channels=1,
        subtype=subtype,
        format=major,
        compression_level=level if fmt is not AudioFormat.WAV else None,
        bitrate_mode=bitrate_mode,
    ) as sound:
        sound.title = title
        sound.artist = artist
        pcm16 = subtype == "PCM_16"
        size = PCM_BLOCK_SAMPLES if pcm16 else WRITE_BLOCK_SAMPLES
        for start in range(0, len(pcm), size):
            block = np.asarray(pcm[start : start + size], np.float32)
            sound.write(to_int16(block) if pcm16 else block)
            if step:
                step(len(block))
