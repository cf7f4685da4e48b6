"""Loudness, true peak, limiter, chapters and formats of the track, on synthetic signals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from coach import loudness
from coach.chapters import Chapter, chapters_from_timeline, cue_sheet, cue_time, vorbis_time
from coach.encode import AudioFormat, audio_format
from coach.errors import CoachError
from coach.timeline import Cue, CueKind, Earcon, Timeline, TimelineOptions
from coach.track import PlacedTrack, collect_sounds, mix_timeline, placements_of, samples_at

RATE = 22050


def _tone(ms: int, hz: float, amplitude: float, *, rate: int = RATE) -> np.ndarray:
    n = ms * rate // 1000
    t = np.arange(n) / rate
    fade = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.01 * rate))
    return (amplitude * np.sin(2 * np.pi * hz * t) * fade).astype(np.float32)


def _speechy(ms: int, seed: int) -> np.ndarray:
    """Noise bursts shaped like syllables: a stand-in for speech with a high crest factor."""
    rng = np.random.default_rng(seed)
    n = ms * RATE // 1000
    syllables = np.abs(np.sin(np.arange(n) / RATE * np.pi * 4)) ** 3
    return (0.3 * rng.standard_normal(n) * syllables).astype(np.float32)


def test_true_peak_finds_peaks_between_samples() -> None:
    # A sine at a quarter of the rate, sampled 45 degrees off its crests: the samples
    # only reach 0.707 of the true peak.
    n = np.arange(RATE)
    pcm = np.sin(2 * np.pi * n / 4 + np.pi / 4).astype(np.float32) * 0.5
    assert 20 * math.log10(float(np.abs(pcm).max())) == pytest.approx(-9.03, abs=0.05)
    assert loudness.true_peak_dbtp(pcm) == pytest.approx(20 * math.log10(0.5), abs=0.2)
    assert loudness.true_peak_dbtp(np.zeros(1000, np.float32)) == -math.inf


def test_loudness_measured_in_stretches_matches_pyloudnorm_on_the_whole_track() -> None:
    track = np.zeros(200 * RATE, np.float32)
    for index, start_s in enumerate(range(0, 195, 7)):
        burst = _speechy(2500 + 300 * (index % 4), seed=index)
        start = start_s * RATE
        track[start : start + len(burst)] += burst
    ours = loudness.integrated_loudness_lufs(track, RATE)
    reference = pyloudnorm.Meter(RATE).integrated_loudness(track.astype(np.float64))
    assert ours == pytest.approx(reference, abs=0.05)


def test_placed_loudness_equals_pyloudnorm_on_the_mixed_track() -> None:
    sounds = {"a": _speechy(1800, 1), "b": _speechy(900, 2), "c": _tone(300, 880, 0.2)}
    placements = [(samples_at(ms), key) for ms, key in [(0, "a"), (2500, "c"), (3100, "b")]]
    placements += [(samples_at(5000 + 1500 * i), "b") for i in range(20)]
    total = samples_at(40_000)
    mix = np.zeros(total, np.float32)
    for start, key in placements:
        mix[start : start + len(sounds[key])] += sounds[key]
    placed = loudness.PlacedLoudness(sounds, placements, total, RATE).lufs({})
    reference = pyloudnorm.Meter(RATE).integrated_loudness(mix.astype(np.float64))
    assert placed == pytest.approx(reference, abs=0.01)


def test_level_sounds_reaches_the_target_and_keeps_peaks_under_the_ceiling() -> None:
    spike = _speechy(1500, 3)
    spike[RATE // 2] = 1.0  # one sharp peak far above the rest
    sounds = {"speech": _speechy(2000, 4), "spike": spike, "tone": _tone(250, 1000, 0.05)}
    placements = [(samples_at(1000 + 4000 * i), key) for i, key in enumerate(sounds)]
    placements += [(samples_at(14_000 + 3000 * i), "speech") for i in range(5)]
    total = samples_at(30_000)

    levelled, report = loudness.level_sounds(sounds, placements, total, RATE, ceiling_dbtp=-3.0)
    track = np.zeros(total, np.float32)
    for start, key in placements:
        track[start : start + len(levelled[key])] += levelled[key]
    reference = pyloudnorm.Meter(RATE).integrated_loudness(track.astype(np.float64))
    assert reference == pytest.approx(-16.0, abs=0.1)
    assert report.loudness_lufs == pytest.approx(reference, abs=0.05)
    true_peak = 20 * math.log10(float(np.abs(resample_poly(track, 4, 1)).max()))
    assert true_peak <= -3.0 + 0.05
    assert report.true_peak_dbtp == pytest.approx(true_peak, abs=0.01)
    assert report.limited_sounds >= 1


def test_true_peak_envelope_is_resample_polys_four_at_a_time() -> None:
    pcm = np.concatenate((_speechy(3000, 5), np.zeros(100, np.float32), _tone(500, 3000, 0.4)))
    pcm[0] = 0.9  # a peak at the very edge: the filter sees silence before it
    over = np.abs(resample_poly(pcm, 4, 1))
    expected = over.reshape(-1, 4).max(axis=1)
    assert np.allclose(loudness._oversampled_peaks(pcm), expected, rtol=0, atol=1e-6)
    assert loudness.true_peak(pcm) == pytest.approx(float(over.max()), abs=1e-6)


def test_placed_loudness_handles_blocks_straddling_sound_and_silence_exactly() -> None:
    # Sounds at odd offsets (not on the 100 ms block grid), one running past the end,
    # one starting 15 ms after another ends, a low tone whose K-weighting rings on after
    # it, a long gap of silence.
    sounds = {"a": _speechy(700, 6), "low": _tone(400, 60, 0.5), "b": _speechy(1300, 7)}
    placements = [(1234, "a"), (47_111, "low"), (60_013, "b"), (400_001, "a"), (17_000, "b")]
    total = 400_001 + len(sounds["a"]) // 2
    mix = np.zeros(total, np.float32)
    for start, key in placements:
        part = sounds[key][: total - start]
        mix[start : start + len(part)] += part
    meter = pyloudnorm.Meter(RATE)
    reference = meter.integrated_loudness(mix.astype(np.float64))
    placed = loudness.PlacedLoudness(sounds, placements, total, RATE)
    assert placed.lufs({}) == pytest.approx(reference, abs=0.001)
    energies = {key: placed.energy(key) for key in sounds}
    blocks = -0.691 + 10 * np.log10(np.maximum(placed.block_mean_squares(energies), 1e-30))
    audible = np.asarray(meter.blockwise_loudness) > -70
    assert np.allclose(blocks[audible], np.asarray(meter.blockwise_loudness)[audible], atol=1e-6)
    assert loudness.integrated_loudness_lufs(mix, RATE) == pytest.approx(reference, abs=0.001)


def test_limiter_gain_moves_smoothly_and_leaves_quiet_parts_alone() -> None:
    pcm = _tone(2000, 440, 0.1)
    pcm[RATE] += 0.9  # a click in the middle of a quiet tone
    peaks = loudness._oversampled_peaks(pcm)
    out, top = loudness._limit(pcm, peaks, RATE, 1.0, loudness.db_to_gain(-6.0))
    assert top <= loudness.db_to_gain(-6.0) * 1.01
    gain = np.divide(out, pcm, out=np.ones_like(out), where=np.abs(pcm) > 1e-3)
    # Far from the click the tone is untouched...
    assert np.allclose(gain[: RATE // 2], 1.0, atol=1e-4)
    assert np.allclose(gain[-RATE // 2 :], 1.0, atol=1e-4)
    # ...and the gain ramps over ~20 ms rather than jumping (no click from the limiter).
    steps = np.abs(np.diff(gain[RATE - RATE // 10 : RATE + RATE // 10]))
    assert float(np.median(steps)) < 0.01


def test_small_speaker_filter_cuts_below_200_hz_and_compresses_gently() -> None:
    low = _tone(1000, 80, 0.3)
    mid = _tone(1000, 1000, 0.3)
    filtered_low = loudness.high_pass(low, RATE)
    filtered_mid = loudness.high_pass(mid, RATE)
    assert np.abs(filtered_low).max() < 0.3 * 10 ** (-12 / 20)
    assert np.abs(filtered_mid).max() == pytest.approx(0.3, rel=0.05)
    loud, quiet = _tone(500, 1000, 0.5), _tone(500, 1000, 0.05)
    ratio_in = 20 * math.log10(0.5 / 0.05)
    out_loud = loudness.compressed(loud, RATE, 1.0)
    out_quiet = loudness.compressed(quiet, RATE, 1.0)
    mid_slice = slice(RATE // 10, RATE * 4 // 10)
    ratio_out = 20 * math.log10(
        float(np.abs(out_loud[mid_slice]).max()) / float(np.abs(out_quiet[mid_slice]).max())
    )
    assert 0 < ratio_out < ratio_in - 3  # closer together, order kept


def _timeline(cues: list[Cue], total_ms: int) -> Timeline:
    return Timeline("t", "Title", TimelineOptions(), tuple(cues), total_ms)


def test_chapters_add_an_introduction_before_the_first_exercise() -> None:
    timeline = _timeline(
        [
            Cue(0, 1000, CueKind.SAY, text="Hello."),
            Cue(1000, 0, CueKind.CHAPTER, text="the lying glide"),
            Cue(5000, 0, CueKind.CHAPTER, text="the seated glide"),
        ],
        9000,
    )
    assert chapters_from_timeline(timeline) == [
        Chapter("Introduction", 0, 1000),
        Chapter("the lying glide", 1000, 5000),
        Chapter("the seated glide", 5000, 9000),
    ]
    only_exercise = _timeline([Cue(0, 0, CueKind.CHAPTER, text="glide")], 500)
    assert chapters_from_timeline(only_exercise) == [Chapter("glide", 0, 500)]


def test_chapter_time_formats() -> None:
    assert vorbis_time(3_723_456) == "01:02:03.456"
    assert cue_time(0) == "00:00:00"
    assert cue_time(61_000 + 500) == "01:01:38"  # 0.5 s = 37.5 frames, rounded
    assert cue_time(100 * 60_000) == "100:00:00"
    sheet = cue_sheet([Chapter('say "hi"', 0, 10)], "a.wav", title="T", artist="coach")
    assert "TITLE \"say 'hi'\"" in sheet and 'FILE "a.wav" WAVE' in sheet


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("a.wav", None, AudioFormat.WAV),
        ("a.FLAC", None, AudioFormat.FLAC),
        ("a.oga", None, AudioFormat.OGG),
        ("a.mp3", None, AudioFormat.MP3),
        ("a.bin", "mp3", AudioFormat.MP3),
        ("a.wav", "OGG", AudioFormat.OGG),
    ],
)
def test_audio_format_from_extension_or_option(
    name: str, fmt: str | None, expected: AudioFormat
) -> None:
    assert audio_format(Path(name), fmt) is expected


def test_unknown_audio_formats_are_user_errors() -> None:
    with pytest.raises(CoachError, match="cannot tell the audio format from 'a'"):
        audio_format(Path("a"))
    with pytest.raises(CoachError, match="unknown audio format 'm4a'"):
        audio_format(Path("a.wav"), "m4a")


class _Tones:
    """A stand-in synthesizer: every sentence is a 300 ms tone (for placement arithmetic)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate

    def synthesize(self, text: str) -> _Phrase:
        return _Phrase(_tone(300, 500 + 10 * len(text), 0.3, rate=self.rate), self.rate)


class _Phrase:
    def __init__(self, pcm: np.ndarray, sample_rate_hz: int) -> None:  # type: ignore[type-arg]
        self.pcm = pcm
        self.sample_rate_hz = sample_rate_hz


def _click(kind: Earcon, rate: int) -> np.ndarray:  # type: ignore[type-arg]
    out = np.zeros(250 * rate // 1000, np.float32)
    out[0] = 1.0
    return out


def test_sounds_land_on_exact_samples_and_are_resampled_to_the_track_rate() -> None:
    timeline = _timeline(
        [
            Cue(0, 300, CueKind.SAY, text="one"),
            Cue(333, 250, CueKind.TONE, earcon=Earcon.HOLD_START),
            Cue(1001, 300, CueKind.SAY, text="two"),
        ],
        2000,
    )
    sounds = collect_sounds(timeline, _Tones(16000), _click)
    assert len(sounds[(CueKind.SAY, "one")]) == pytest.approx(300 * RATE / 1000, abs=2)
    track = mix_timeline(timeline, sounds)
    assert len(track) == samples_at(2000)
    assert track[samples_at(333)] == pytest.approx(1.0)
    assert np.all(track[samples_at(300) + 5 : samples_at(333)] == 0)
    assert np.abs(track[samples_at(1001) : samples_at(1301)]).max() > 0.1


def test_the_placed_track_reads_like_the_mixed_track_in_any_slices() -> None:
    timeline = _timeline(
        [
            Cue(0, 300, CueKind.SAY, text="one"),
            Cue(333, 250, CueKind.TONE, earcon=Earcon.HOLD_START),
            Cue(1001, 300, CueKind.SAY, text="two"),
            Cue(1900, 300, CueKind.SAY, text="one"),  # runs past the end of the track
        ],
        2000,
    )
    sounds = collect_sounds(timeline, _Tones(RATE), _click)
    mixed = mix_timeline(timeline, sounds)
    track = PlacedTrack(sounds, placements_of(timeline), len(mixed))
    assert len(track) == len(mixed)
    for size in (1, 997, 4096, len(mixed)):
        pieces = [track[start : start + size] for start in range(0, len(track), size)]
        assert np.array_equal(np.concatenate(pieces), mixed)
    assert np.array_equal(track[: len(track) // 2], mixed[: len(mixed) // 2])
