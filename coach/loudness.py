"""Loudness for the rendered track: -16 LUFS integrated, true peak at most -1 dBTP.

Integrated loudness is measured by pyloudnorm (ITU-R BS.1770-4); true peak by
4x oversampling with ``scipy.signal.resample_poly`` (BS.1770-4 Annex 2). A
look-ahead peak limiter keeps the true peak under the ceiling without pumping:
it only acts on the peaks above the ceiling, and its gain holds through a
syllable instead of following every pitch pulse.

A session is a few dozen distinct sounds (phrases, earcons) placed many times,
so limiting works on each distinct sound once, while loudness is always
measured on the whole mixed track.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
import pyloudnorm
from pyloudnorm.iirfilter import IIRfilter
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import butter, resample_poly, sosfilt

Pcm = npt.NDArray[np.float32]
K = TypeVar("K")

TARGET_LUFS = -16.0
"""Integrated loudness of the rendered track (the usual target for spoken podcasts)."""
MAX_TRUE_PEAK_DBTP = -1.0
"""Highest true peak allowed in the rendered track."""

OVERSAMPLING = 4
"""True-peak oversampling factor (BS.1770 asks for at least 4x below 96 kHz)."""
CHUNK_SAMPLES = 1 << 18
"""Samples processed at a time (about 12 s at 22,050 Hz): bounds memory, not results."""
_PAD_SAMPLES = 64
"""Context each side of a chunk for the oversampling filter (longer than its half-length)."""

LIMITER_RAMP_MS = 20
"""Limiter attack and release ramp; also its look-ahead, so it is ready before the peak."""
LIMITER_HOLD_MS = 40
"""How long the limiter keeps its gain after a peak: longer than a pitch period, so the
gain does not follow each glottal pulse (which would be heard as buzzing or pumping)."""

GATING_BLOCK_S = 0.4
"""BS.1770 gating block, with 75% overlap (a new block every 100 ms)."""
_MEASURE_BLOCKS = 300
"""Gating blocks measured per pyloudnorm call (30 s): bounds memory on long sessions."""
_PREROLL_HOPS = 5
_ENERGY_STEP = 8
"""Keep a sound's cumulative energy every 8 samples (memory); hop edges round to it."""
"""Audio (in 100 ms hops) fed before each measured stretch so the K-filter has settled."""


@dataclass(frozen=True, slots=True)
class LoudnessReport:
    """What levelling did: final loudness and true peak, and how much limiting."""

    loudness_lufs: float
    """Integrated loudness of the levelled track, measured."""
    true_peak_dbtp: float
    """Highest true peak of the levelled sounds."""
    gain_db: float
    """Overall gain applied (before the limiter's local reductions)."""
    limited_sounds: int
    """How many distinct sounds the limiter had to turn down somewhere."""


def db_to_gain(db: float) -> float:
    """Linear amplitude for a level in dB."""
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    """Level in dB for a linear amplitude (-inf for 0)."""
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


def _oversampled_peaks(segment: Pcm) -> Pcm:
    """Per input sample, the highest absolute value of the 4x oversampled signal after it."""
    over = np.abs(np.asarray(resample_poly(segment, OVERSAMPLING, 1), np.float32))
    # Strided maxima: much faster than reshape(-1, 4).max(axis=1) on long arrays.
    peaks: Pcm = np.maximum(
        np.maximum(over[0::OVERSAMPLING], over[1::OVERSAMPLING]),
        np.maximum(over[2::OVERSAMPLING], over[3::OVERSAMPLING]),
    )
    return peaks


def true_peak_dbtp(pcm: Pcm) -> float:
    """True peak of ``pcm`` in dBTP (4x oversampled), -inf for silence."""
    n = len(pcm)
    peak = 0.0
    for start in range(0, n, CHUNK_SAMPLES):
        stop = min(n, start + CHUNK_SAMPLES)
        lo, hi = max(0, start - _PAD_SAMPLES), min(n, stop + _PAD_SAMPLES)
        segment = pcm[lo:hi]
        if segment.any():
            peak = max(peak, float(_oversampled_peaks(segment)[start - lo : stop - lo].max()))
    return gain_to_db(peak)


def _block_loudness(pcm: Pcm, sample_rate_hz: int) -> npt.NDArray[np.float64]:
    """pyloudnorm's loudness of every 400 ms gating block of ``pcm`` (LUFS, -inf if silent).

    pyloudnorm measures a whole signal at once and keeps float64 copies of it; a
    long session is fed to it 30 s at a time (with 0.5 s of the audio before
    each stretch, so its K-weighting filter starts settled), which gives the same
    blocks with a bounded amount of memory.
    """
    meter = pyloudnorm.Meter(sample_rate_hz, block_size=GATING_BLOCK_S)
    hop = round(GATING_BLOCK_S * 0.25 * sample_rate_hz)
    n_blocks = max(1, round((len(pcm) / sample_rate_hz - GATING_BLOCK_S) / 0.1) + 1)
    blocks = np.full(n_blocks, -np.inf)
    for first in range(0, n_blocks, _MEASURE_BLOCKS):
        last = min(n_blocks, first + _MEASURE_BLOCKS)
        preroll = min(first, _PREROLL_HOPS)
        lo, hi = (first - preroll) * hop, (last + 3) * hop
        segment = pcm[lo:hi]
        if not segment.any():
            continue
        if len(segment) < hi - lo:  # the last blocks reach past the end: silence there
            segment = np.concatenate((segment, np.zeros(hi - lo - len(segment), np.float32)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # log10(0) of silent blocks
            meter.integrated_loudness(segment.astype(np.float64))
        measured = np.asarray(meter.blockwise_loudness, np.float64)
        blocks[first:last] = measured[preroll : preroll + last - first]
    return blocks


def integrated_loudness_lufs(pcm: Pcm, sample_rate_hz: int) -> float:
    """Integrated loudness of ``pcm`` in LUFS (BS.1770-4 via pyloudnorm); -inf for silence.

    The block loudness comes from pyloudnorm; the gating is BS.1770-4's, as in
    ``pyloudnorm.Meter.integrated_loudness``: blocks above -70 LUFS, then above
    the mean of those minus 10 LU.
    """
    return _gated(_block_loudness(pcm, sample_rate_hz))


Gain = float | Pcm
"""A sound's gain: one number, or one per sample where the limiter acts."""


def _limiter_gain(
    peaks: Pcm, sample_rate_hz: int, gain: float, ceiling: float
) -> tuple[Gain, float]:
    """The gain for a sound (``peaks``: its true-peak envelope at unit gain) and its new peak.

    Plain ``gain`` where that keeps every true peak under ``ceiling``. Otherwise
    the limiter: the gain each sample needs so its oversampled peak stays under
    the ceiling, then a minimum over [n - hold, n + ramp] (hold after a peak,
    look ahead before it), then a moving average over [n - ramp, n] (linear
    attack and release ramps). Each value in that average is at most the gain
    needed at a peak inside its window, so the peak itself is always turned down
    enough.
    """
    loudest = float(peaks.max()) * gain if len(peaks) else 0.0
    if loudest <= ceiling:
        return gain, loudest
    hold = sample_rate_hz * LIMITER_HOLD_MS // 1000
    ramp = sample_rate_hz * LIMITER_RAMP_MS // 1000
    needed = np.minimum(1.0, ceiling / np.maximum(peaks * np.float32(gain), 1e-12))
    min_size = hold + ramp + 1
    held = minimum_filter1d(needed, min_size, mode="nearest", origin=min_size // 2 - hold)
    mean_size = ramp + 1
    smooth = uniform_filter1d(held, mean_size, mode="nearest", origin=mean_size // 2 - ramp)
    local: Pcm = np.asarray(smooth * np.float32(gain), np.float32)
    return local, float((peaks * local).max())


def _scaled(pcm: Pcm, gain: Gain) -> Pcm:
    """``pcm`` times a gain (one number or one per sample)."""
    factor = np.float32(gain) if isinstance(gain, float) else gain
    return np.asarray(pcm * factor, np.float32)


def _limit(
    pcm: Pcm, peaks: Pcm, sample_rate_hz: int, gain: float, ceiling: float
) -> tuple[Pcm, float]:
    """``pcm`` times ``gain``, limited (see :func:`_limiter_gain`), and its estimated peak."""
    local, top = _limiter_gain(peaks, sample_rate_hz, gain, ceiling)
    return _scaled(pcm, local), top


def _k_weighted(pcm: Pcm, sample_rate_hz: int) -> npt.NDArray[np.float64]:
    """``pcm`` through BS.1770's K-weighting, built from pyloudnorm's own filter class."""
    out = np.asarray(pcm, np.float64)
    for stage in (
        IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sample_rate_hz, "high_shelf"),
        IIRfilter(0.0, 0.5, 38.0, sample_rate_hz, "high_pass"),
    ):
        out = stage.apply_filter(out)
    return out


class PlacedLoudness(Generic[K]):
    """Integrated loudness of a track made of sounds placed at offsets, without mixing it.

    BS.1770 loudness only needs the energy of the K-weighted track in each 100 ms
    hop. K-weighting is linear and the sounds of a timeline do not overlap, so
    that energy is the sum of each placed sound's own K-weighted energy in the
    hop. Each distinct sound is K-weighted once and its energy kept per 8
    samples; a gain (one number, or the limiter's slowly moving envelope, which
    K-weighting passes through unchanged to within a fraction of a percent)
    scales those energies. The gating then follows BS.1770-4 (as pyloudnorm
    does). Used to find the gain fast; the finished track is measured by
    pyloudnorm itself.
    """

    def __init__(
        self,
        sounds: Mapping[K, Pcm],
        placements: Sequence[tuple[int, K]],
        total_samples: int,
        sample_rate_hz: int,
    ) -> None:
        self.placements = placements
        self.rate = sample_rate_hz
        self.hop = round(GATING_BLOCK_S * 0.25 * sample_rate_hz)
        self.n_hops = total_samples // self.hop + 1
        self.n_blocks = max(1, round((total_samples / sample_rate_hz - GATING_BLOCK_S) / 0.1) + 1)
        self._steps: dict[K, tuple[npt.NDArray[np.float64], int]] = {}
        for key, pcm in sounds.items():
            weighted = _k_weighted(pcm, sample_rate_hz) ** 2
            padded = np.concatenate((weighted, np.zeros(-len(weighted) % _ENERGY_STEP)))
            self._steps[key] = (padded.reshape(-1, _ENERGY_STEP).sum(axis=1), len(pcm))

    def lufs(self, gains: Mapping[K, Gain]) -> float:
        """Integrated loudness of the track with each sound times its gain."""
        cumulative: dict[K, npt.NDArray[np.float64]] = {}
        for key, (steps, _) in self._steps.items():
            gain = gains.get(key, 1.0)
            if isinstance(gain, float):
                energy = steps * gain**2
            else:
                energy = steps * np.asarray(gain[::_ENERGY_STEP], np.float64) ** 2
            cumulative[key] = np.concatenate(([0.0], np.cumsum(energy)))
        hop_energy = np.zeros(self.n_hops + 4)
        for start, key in self.placements:
            energy, length = cumulative[key], self._steps[key][1]
            first, last = start // self.hop, (start + length) // self.hop
            edges = np.clip(np.arange(first, last + 2) * self.hop - start, 0, length)
            # Hop edges to the nearest stored step: at most 4 of a hop's 2,205 samples off.
            steps = np.minimum((edges + _ENERGY_STEP // 2) // _ENERGY_STEP, len(energy) - 1)
            hop_energy[first : last + 1] += np.diff(energy[steps])
        windows = np.lib.stride_tricks.sliding_window_view(hop_energy, 4)[: self.n_blocks]
        mean_square = windows.sum(axis=1) / (GATING_BLOCK_S * self.rate)
        with np.errstate(divide="ignore"):
            blocks = -0.691 + 10.0 * np.log10(mean_square)
        return _gated(blocks)


def _gated(blocks: npt.NDArray[np.float64]) -> float:
    """BS.1770-4 gating of block loudness values (LUFS) into integrated loudness."""
    audible = blocks[blocks >= -70.0]
    if audible.size == 0:
        return -math.inf
    power = 10.0 ** ((audible + 0.691) / 10.0)
    relative_gate = -0.691 + 10.0 * math.log10(float(power.mean())) - 10.0
    gated = power[audible > relative_gate]
    return -0.691 + 10.0 * math.log10(float(gated.mean()))


def level_sounds(
    sounds: Mapping[K, Pcm],
    placements: Sequence[tuple[int, K]],
    mix: Callable[[Mapping[K, Pcm]], Pcm],
    total_samples: int,
    sample_rate_hz: int,
    *,
    target_lufs: float = TARGET_LUFS,
    ceiling_dbtp: float = MAX_TRUE_PEAK_DBTP,
) -> tuple[Pcm, LoudnessReport]:
    """Level a track made of distinct sounds: one gain for all, each limited on its own.

    ``placements`` lists ``(start sample, sound key)`` for every placed sound and
    ``mix(sounds)`` places them into the track. The gain is found with
    :class:`PlacedLoudness` (limiting lowers the loudness, so gain and limiter go
    round a few times until the loudness is within 0.02 LU), then the track is
    mixed once and measured by pyloudnorm; if that measurement is off by more
    than 0.05 LU the gain is corrected once more. Limiting each distinct sound
    once is much faster than limiting a long track and makes a phrase sound the
    same every time it is said. Sounds in a timeline follow each other rather
    than overlap, so the track's true peak is the highest of theirs.

    Returns the levelled track and what was done.
    """
    ceiling = db_to_gain(ceiling_dbtp)
    placed: PlacedLoudness[K] = PlacedLoudness(sounds, placements, total_samples, sample_rate_hz)
    loudness = placed.lufs({})
    if not math.isfinite(loudness):  # nothing audible: nothing to level
        return mix(sounds), LoudnessReport(loudness, -math.inf, 0.0, 0)
    peaks = {key: _oversampled_peaks(pcm) for key, pcm in sounds.items()}

    def gains_at(gain_db: float) -> tuple[dict[K, Gain], float]:
        """Each sound's gain (limited where needed) at this overall gain, and the top peak."""
        gain = db_to_gain(gain_db)
        gains: dict[K, Gain] = {}
        top = 0.0
        for key in sounds:
            gains[key], peak = _limiter_gain(peaks[key], sample_rate_hz, gain, ceiling)
            top = max(top, peak)
        return gains, top

    def levelled_track(gains: Mapping[K, Gain]) -> Pcm:
        return mix({key: _scaled(pcm, gains[key]) for key, pcm in sounds.items()})

    # Find the gain whose limited result measures target_lufs. Limiting makes the
    # loudness grow more slowly than the gain, so step along the measured slope
    # (secant method), starting from the slope of plain gain (1 LU per dB).
    gain_db, slope = target_lufs - loudness, 1.0
    last: tuple[float, float] | None = None
    for _ in range(10):
        gains, top = gains_at(gain_db)
        measured = placed.lufs(gains)
        error_db = target_lufs - measured
        if abs(error_db) < 0.02:
            break
        if last is not None and gain_db != last[0]:
            slope = min(1.0, max(0.1, (measured - last[1]) / (gain_db - last[0])))
        last = (gain_db, measured)
        gain_db += error_db / slope
    track = levelled_track(gains)
    loudness = integrated_loudness_lufs(track, sample_rate_hz)
    if abs(target_lufs - loudness) > 0.05:  # the fast measure missed (overlapping sounds?)
        gain_db += target_lufs - loudness
        gains, top = gains_at(gain_db)
        track = levelled_track(gains)
        loudness = integrated_loudness_lufs(track, sample_rate_hz)
    turned_down = sum(1 for g in gains.values() if not isinstance(g, float))
    return track, LoudnessReport(loudness, gain_to_db(top), gain_db, turned_down)


SMALL_SPEAKER_HIGHPASS_HZ = 220.0
"""Tiny speakers cannot move air below ~200 Hz; energy there only costs headroom."""
COMPRESSOR_THRESHOLD_DB = -26.0
"""RMS level (dBFS, after levelling to the target loudness) above which gain is reduced."""
COMPRESSOR_RATIO = 3.0
"""Gentle: 3 dB above the threshold comes out as 1 dB."""
COMPRESSOR_RMS_MS = 10
"""RMS detector window: about one pitch period or two at speaking pitch."""
COMPRESSOR_RELEASE_MS = 60
"""Gain smoothing; with the hold, long enough that syllables are not pumped."""


def high_pass(pcm: Pcm, sample_rate_hz: int) -> Pcm:
    """``pcm`` through a gentle 2nd-order Butterworth high-pass at 220 Hz (a copy)."""
    sos = butter(2, SMALL_SPEAKER_HIGHPASS_HZ, btype="highpass", fs=sample_rate_hz, output="sos")
    return np.asarray(sosfilt(sos, pcm), np.float32)


def compressed(pcm: Pcm, sample_rate_hz: int, level_gain: float) -> Pcm:
    """``pcm`` through a gentle feed-forward RMS compressor (a copy, same level).

    ``level_gain`` is the gain that brings the whole track to the target loudness,
    so the threshold means the same for every voice. The detector is the RMS
    over 10 ms; above -26 dBFS the gain falls 2 dB for every 3 dB (3:1); the gain
    reduction is held and smoothed over ~60 ms so it rides whole syllables instead
    of pumping. Quiet consonants come closer to the vowels, which is what keeps
    words intelligible through a phone speaker. The output is returned at the
    input's level (the levelling that follows sets the loudness).
    """
    window = max(1, sample_rate_hz * COMPRESSOR_RMS_MS // 1000)
    release = max(1, sample_rate_hz * COMPRESSOR_RELEASE_MS // 1000)
    slope = 1.0 - 1.0 / COMPRESSOR_RATIO
    levelled = pcm.astype(np.float64) * level_gain
    mean_square = uniform_filter1d(levelled * levelled, window, mode="nearest")
    rms = np.sqrt(np.maximum(mean_square, 0.0) + 1e-20)  # running sums can dip below 0
    over_db = np.maximum(0.0, 20.0 * np.log10(rms) - COMPRESSOR_THRESHOLD_DB)
    gain = 10.0 ** (-slope * over_db / 20.0)
    gain = minimum_filter1d(gain, release, mode="nearest")
    gain = uniform_filter1d(gain, release, mode="nearest")
    return np.asarray(pcm * gain, np.float32)
