"""The rendered track, checked by decoding the files and analysing the audio (real espeak-ng)."""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mutagen
import numpy as np
import pyloudnorm
import pytest
from mutagen.id3 import ID3
from scipy.signal import resample_poly, welch
from track_support import (
    FAST_PACE,
    cues_of,
    decode,
    earcon_onsets_ms,
    small_routine,
    speech_onsets_ms,
)

from coach import encode, track
from coach.chapters import chapters_from_timeline
from coach.errors import CoachError
from coach.phrase_cache import PhraseCache
from coach.speech import Synthesizer
from coach.timeline import CueKind, Timeline, TimelineOptions, compile_timeline
from coach.track import RenderSummary, TrackError, render_track
from coach.voices import DEFAULT_VOICE_ID, load_voice

pytestmark = pytest.mark.speech

FORMATS = ["wav", "flac", "ogg", "mp3"]


@dataclass(frozen=True)
class Session:
    """One small session compiled with measured speech, and its renders."""

    timeline: Timeline
    cache_root: Path
    renders: dict[str, RenderSummary]
    first_stats_misses: int


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    # Module scope runs before conftest's per-test cache dirs: give the cache its own folder.
    cache_root = tmp_path_factory.mktemp("phrases")
    out_dir = tmp_path_factory.mktemp("renders")
    with Synthesizer(load_voice(DEFAULT_VOICE_ID), PhraseCache(cache_root)) as synth:
        options = TimelineOptions(pace=FAST_PACE, returning_user=True)
        timeline = compile_timeline(small_routine(), options, speech_ms=synth.speech_ms)
        renders = {
            fmt: render_track(timeline, synth, out_dir / f"session.{fmt}", title="Track test")
            for fmt in FORMATS
        }
        misses = synth.stats.misses
    yield Session(timeline, cache_root, renders, misses)


def test_the_small_session_has_what_the_checks_need(session: Session) -> None:
    timeline = session.timeline
    assert len(cues_of(timeline, CueKind.CHAPTER)) == 2
    assert {cue.earcon for cue in cues_of(timeline, CueKind.TONE)} >= {
        track.Earcon.EXERCISE_START,
        track.Earcon.HOLD_START,
        track.Earcon.HOLD_END,
        track.Earcon.SESSION_END,
    }
    assert session.first_stats_misses > 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_duration_equals_the_timeline(session: Session, fmt: str) -> None:
    summary = session.renders[fmt]
    audio = decode(summary.path)
    assert audio.sample_rate_hz == track.TRACK_SAMPLE_RATE_HZ
    assert abs(audio.duration_ms - session.timeline.total_ms) <= 50
    assert abs(summary.duration_ms - session.timeline.total_ms) <= 50
    assert summary.size_bytes == summary.path.stat().st_size


@pytest.mark.parametrize("fmt", FORMATS)
def test_loudness_is_minus_16_lufs_with_true_peak_under_minus_1(session: Session, fmt: str) -> None:
    audio = decode(session.renders[fmt].path)
    loudness = pyloudnorm.Meter(audio.sample_rate_hz).integrated_loudness(audio.pcm)
    assert loudness == pytest.approx(-16.0, abs=0.5)
    oversampled = resample_poly(audio.pcm, 4, 1)
    true_peak_db = 20 * math.log10(float(np.max(np.abs(oversampled))))
    assert true_peak_db <= -1.0
    if fmt in ("wav", "flac"):  # lossless: the summary's exact figures are the file's
        summary = session.renders[fmt]
        assert summary.loudness_lufs == pytest.approx(loudness, abs=0.05)
        assert summary.true_peak_dbtp == pytest.approx(true_peak_db, abs=0.05)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_earcon_starts_within_20_ms_of_its_cue(session: Session, fmt: str) -> None:
    audio = decode(session.renders[fmt].path)
    tones = cues_of(session.timeline, CueKind.TONE)
    assert tones
    for cue in tones:
        assert cue.earcon is not None
        (found_ms,) = earcon_onsets_ms(audio, cue.earcon, [cue.at_ms])
        assert abs(found_ms - cue.at_ms) <= 20, (cue, found_ms)


@pytest.mark.parametrize("fmt", FORMATS)
def test_speech_starts_where_say_cues_say(session: Session, fmt: str) -> None:
    audio = decode(session.renders[fmt].path)
    tone_ends = {cue.end_ms for cue in cues_of(session.timeline, CueKind.TONE)}
    says = cues_of(session.timeline, CueKind.SAY)
    # An onset needs silence before it: skip sentences that start as a tone fades out.
    after_silence = [cue for cue in says if cue.at_ms not in tone_ends]
    assert len(after_silence) >= 0.8 * len(says)
    onsets = speech_onsets_ms(audio, [cue.at_ms for cue in after_silence])
    for cue, onset_ms in zip(after_silence, onsets, strict=True):
        assert abs(onset_ms - cue.at_ms) <= 20, (cue.text, cue.at_ms, onset_ms)


def test_nothing_sounds_in_the_pauses(session: Session) -> None:
    audio = decode(session.renders["wav"].path)
    rate = audio.sample_rate_hz
    for cue in cues_of(session.timeline, CueKind.PAUSE):
        # A pause follows a phrase whose own trailing pause is silent too; skip the edges.
        start = (cue.at_ms + 10) * rate // 1000
        stop = (cue.end_ms - 10) * rate // 1000
        if stop > start:
            assert np.max(np.abs(audio.pcm[start:stop])) < 10 ** (-60 / 20), cue


def _expected_chapters(session: Session) -> list[tuple[str, int]]:
    return [(c.title, c.start_ms) for c in chapters_from_timeline(session.timeline)]


def test_chapters_start_at_each_exercise(session: Session) -> None:
    chapters = _expected_chapters(session)
    exercise_starts = [cue.at_ms for cue in cues_of(session.timeline, CueKind.CHAPTER)]
    assert [start for _, start in chapters] == [0, *exercise_starts]
    assert [title for title, _ in chapters][1:] == ["the lying glide", "the seated glide"]


def test_mp3_has_id3_chapters_and_tags(session: Session) -> None:
    tags = ID3(session.renders["mp3"].path)
    chaps = sorted(tags.getall("CHAP"), key=lambda frame: frame.start_time)
    found = [(frame.sub_frames["TIT2"].text[0], frame.start_time) for frame in chaps]
    assert found == _expected_chapters(session)
    assert chaps[-1].end_time == session.timeline.total_ms
    (toc,) = tags.getall("CTOC")
    assert list(toc.child_element_ids) == [frame.element_id for frame in chaps]
    assert tags["TIT2"].text == ["Track test"]
    assert tags["TPE1"].text == ["coach"]


def _vorbis_time_ms(text: str) -> int:
    hours, minutes, seconds = text.split(":")
    return round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)


@pytest.mark.parametrize("fmt", ["ogg", "flac"])
def test_ogg_and_flac_have_chapter_comments_and_tags(session: Session, fmt: str) -> None:
    audio = mutagen.File(session.renders[fmt].path)
    tags = audio.tags
    found = []
    number = 1
    while f"CHAPTER{number:03d}" in tags:
        found.append(
            (tags[f"CHAPTER{number:03d}NAME"][0], _vorbis_time_ms(tags[f"CHAPTER{number:03d}"][0]))
        )
        number += 1
    assert found == _expected_chapters(session)
    assert tags["TITLE"] == ["Track test"]
    assert tags["ARTIST"] == ["coach"]


def test_wav_has_a_cue_sheet_and_riff_tags(session: Session) -> None:
    summary = session.renders["wav"]
    assert summary.cue_sheet == summary.path.with_suffix(".cue")
    text = summary.cue_sheet.read_text(encoding="utf-8")
    assert f'FILE "{summary.path.name}" WAVE' in text
    assert 'TITLE "Track test"' in text and 'PERFORMER "coach"' in text
    indexes = [line.split()[-1] for line in text.splitlines() if "INDEX 01" in line]
    titles = [line.split('"')[1] for line in text.splitlines() if line.startswith("    TITLE")]
    found = []
    for title, index in zip(titles, indexes, strict=True):
        minutes, seconds, frames = (int(part) for part in index.split(":"))
        found.append((title, (minutes * 60 + seconds) * 1000 + frames * 1000 / 75))
    for (title, start_ms), (want_title, want_ms) in zip(
        found, _expected_chapters(session), strict=True
    ):
        assert title == want_title
        assert abs(start_ms - want_ms) <= 1000 / 75
    import soundfile

    with soundfile.SoundFile(str(summary.path)) as sound:
        assert sound.title == "Track test"
        assert sound.artist == "coach"


def test_a_second_render_synthesizes_nothing(session: Session, tmp_path: Path) -> None:
    with Synthesizer(load_voice(DEFAULT_VOICE_ID), PhraseCache(session.cache_root)) as synth:
        options = TimelineOptions(pace=FAST_PACE, returning_user=True)
        timeline = compile_timeline(small_routine(), options, speech_ms=synth.speech_ms)
        assert timeline == session.timeline
        render_track(timeline, synth, tmp_path / "again.ogg")
        assert synth.stats.misses == 0
        assert synth.stats.hits > 0


def test_small_speaker_cuts_the_bass_and_keeps_the_level(session: Session, tmp_path: Path) -> None:
    with Synthesizer(load_voice(DEFAULT_VOICE_ID), PhraseCache(session.cache_root)) as synth:
        summary = render_track(session.timeline, synth, tmp_path / "small.flac", small_speaker=True)
    normal = decode(session.renders["flac"].path)
    small = decode(summary.path)
    assert abs(small.duration_ms - session.timeline.total_ms) <= 50
    rate = small.sample_rate_hz
    loudness = pyloudnorm.Meter(rate).integrated_loudness(small.pcm)
    assert loudness == pytest.approx(-16.0, abs=0.5)

    def bass_share(pcm: np.ndarray) -> float:
        freqs, power = welch(pcm, fs=rate, nperseg=4096)
        return float(power[freqs < 150].sum() / power.sum())

    assert bass_share(small.pcm) < bass_share(normal.pcm) / 3
    hold_start = cues_of(session.timeline, CueKind.TONE)[0]
    assert hold_start.earcon is not None
    (found_ms,) = earcon_onsets_ms(small, hold_start.earcon, [hold_start.at_ms])
    assert abs(found_ms - hold_start.at_ms) <= 20


def test_a_phrase_longer_than_its_cue_is_refused(session: Session, tmp_path: Path) -> None:
    with Synthesizer(load_voice(DEFAULT_VOICE_ID), PhraseCache(session.cache_root)) as synth:
        # Compiled as if every sentence took 100 ms: the real phrases do not fit.
        timeline = compile_timeline(
            small_routine(), TimelineOptions(pace=FAST_PACE), speech_ms=lambda text: 100
        )
        out = tmp_path / "short.wav"
        with pytest.raises(TrackError, match="speech_ms"):
            render_track(timeline, synth, out)
    assert list(tmp_path.iterdir()) == []


class _Refuse:
    """A synthesizer that must never be asked: errors are found before any synthesis."""

    def synthesize(self, text: str) -> track.SpokenPhrase:
        raise AssertionError("synthesized before checking the output")


def test_unknown_format_is_a_one_line_error(session: Session, tmp_path: Path) -> None:
    with pytest.raises(CoachError, match="unknown audio format 'aiff'") as caught:
        render_track(session.timeline, _Refuse(), tmp_path / "a.wav", fmt="aiff")
    assert "\n" not in str(caught.value)
    with pytest.raises(CoachError, match="cannot tell the audio format"):
        render_track(session.timeline, _Refuse(), tmp_path / "a.m4a")
    assert list(tmp_path.iterdir()) == []


def test_format_option_overrides_the_extension(session: Session, tmp_path: Path) -> None:
    with Synthesizer(load_voice(DEFAULT_VOICE_ID), PhraseCache(session.cache_root)) as synth:
        summary = render_track(session.timeline, synth, tmp_path / "session.audio", fmt="flac")
    assert summary.fmt is encode.AudioFormat.FLAC
    assert summary.path.read_bytes()[:4] == b"fLaC"


def test_missing_or_unwritable_folder_is_a_one_line_error(session: Session, tmp_path: Path) -> None:
    with pytest.raises(TrackError, match="does not exist"):
        render_track(session.timeline, _Refuse(), tmp_path / "nowhere" / "a.wav")
    with pytest.raises(TrackError, match="is a directory"):
        render_track(session.timeline, _Refuse(), tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        # Root ignores permissions; /proc refuses new files even to root.
        unwritable = locked if os.geteuid() != 0 else Path("/proc")
        if not unwritable.is_dir():
            pytest.skip("no folder that refuses writes on this system")
        with pytest.raises(TrackError, match="cannot write") as caught:
            render_track(session.timeline, _Refuse(), unwritable / "a.wav")
        assert "\n" not in str(caught.value)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_disk_full_leaves_no_partial_file_and_keeps_the_old_one(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "session.ogg"
    out.write_bytes(b"the previous render")
    real_write = encode.write_audio

    def full_disk(target: Path, pcm: np.ndarray, *args: object, **kwargs: object) -> None:
        real_write(target, pcm[: len(pcm) // 2], *args, **kwargs)  # type: ignore[arg-type]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(track, "write_audio", full_disk)
    with (
        Synthesizer(load_voice(DEFAULT_VOICE_ID), PhraseCache(session.cache_root)) as synth,
        pytest.raises(TrackError, match="no space left") as caught,
    ):
        render_track(session.timeline, synth, out)
    assert "\n" not in str(caught.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["session.ogg"]
    assert out.read_bytes() == b"the previous render"


def test_a_failing_cue_sheet_leaves_neither_file(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(track, "cue_sheet", broken)
    with (
        Synthesizer(load_voice(DEFAULT_VOICE_ID), PhraseCache(session.cache_root)) as synth,
        pytest.raises(TrackError, match="Input/output error"),
    ):
        render_track(session.timeline, synth, tmp_path / "session.wav")
    assert list(tmp_path.iterdir()) == []


def test_written_files_follow_the_umask(session: Session) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    for summary in session.renders.values():
        # Not mkstemp's private 0o600: a track is a file like any other the user creates.
        assert summary.path.stat().st_mode & 0o777 == 0o666 & ~umask
