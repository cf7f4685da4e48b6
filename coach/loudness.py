"""Loudness for the rendered track: -16 LUFS integrated, true peak at most -1 dBTP.

A session is a few dozen distinct sounds (phrases, earcons) placed many times
in silence. Both measures are computed exactly from those distinct sounds, each
analysed once, without ever mixing the track:

- Integrated loudness (ITU-R BS.1770-4, exactly as ``pyloudnorm.Meter`` computes
  it: its K-weighting filters, its 400 ms blocks every 100 ms, its gating). The
  K-weighting is linear and starts from rest, and the sounds do not overlap, so
  the energy of the K-weighted track between two samples is the sum of each
  placed sound's own K-weighted energy there (including the filter's ring-out
  after the sound). Each sound's cumulative energy is kept at just the block
  edges its placements need, which also handles blocks that straddle sound and
  silence; silence costs nothing.
- True peak (BS.1770-4 Annex 2): the 4x oversampled signal of
  ``scipy.signal.resample_poly`` (same filter, computed per polyphase branch in
  float32). The filter reaches 10 samples either side, so the track's true peak
  is the highest of its sounds'.

A look-ahead peak limiter keeps the true peak under the ceiling without pumping:
it only acts on the peaks above the ceiling, and its gain holds through a
syllable instead of following every pitch pulse. Each distinct sound is limited
once, so a phrase sounds the same every time it is said.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
from pyloudnorm.iirfilter import IIRfilter
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import butter, firwin, sosfilt

Pcm = npt.NDArray[np.float32]
Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.int64]
K = TypeVar("K")

TARGET_LUFS = -16.0
"""Integrated loudness of the rendered track (the usual target for spoken podcasts)."""
MAX_TRUE_PEAK_DBTP = -1.0
"""Highest true peak allowed in the rendered track."""

OVERSAMPLING = 4
"""True-peak oversampling factor (BS.1770 asks for at least 4x below 96 kHz)."""
_HALF_TAPS = 10 * OVERSAMPLING
"""Half-length of ``resample_poly``'s default filter for 4x: 10 input samples each side."""
_REACH = _HALF_TAPS // OVERSAMPLING
"""Input samples either side that one oversampled value depends on."""
CHUNK_SAMPLES = 1 << 15
"""Samples processed at a time (about 1.5 s at 22,050 Hz): fits the CPU cache, bounds memory."""

LIMITER_RAMP_MS = 20
"""Limiter attack and release ramp; also its look-ahead, so it is ready before the peak."""
LIMITER_HOLD_MS = 40
"""How long the limiter keeps its gain after a peak: longer than a pitch period, so the
gain does not follow each glottal pulse (which would be heard as buzzing or pumping)."""

GATING_BLOCK_S = 0.4
"""BS.1770 gating block, with 75% overlap (a new block every 100 ms)."""
_BLOCK_OVERLAP = 0.75
K_TAIL_SAMPLES = 2048
"""K-weighting ring-out counted after each sound (93 ms at 22,050 Hz). The slowest pole
(the 38 Hz high-pass) decays by e in 4 ms: beyond this the ring-out carries less than
1e-18 of the sound's energy."""
_ENERGY_STEP = 8
"""Energy kept per 8 samples for estimates under a limiter's moving gain."""
SEARCH_TOLERANCE_LU = 0.02
"""How close to the target the gain search, then the exact measure, must come."""


@dataclass(frozen=True, slots=True)
class LoudnessReport:
    """What levelling did: final loudness and true peak, and how much limiting."""

    loudness_lufs: float
    """Integrated loudness of the levelled track (exact, as pyloudnorm measures the mix)."""
    true_peak_dbtp: float
    """Highest true peak of the levelled sounds (exact, 4x oversampled)."""
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


# --------------------------------------------------------------------------- true peak


@cache
def _polyphase_taps() -> tuple[tuple[tuple[np.float32, int], ...], ...]:
    """``resample_poly(x, 4, 1)``'s filter split by output phase: ``(coefficient, offset)``.

    Output sample ``4n + p`` is the sum of ``coefficient * x[n + offset]`` over phase
    ``p``'s taps. The filter is resample_poly's own default (a Kaiser-windowed sinc, 81
    taps, float32 for float32 input); taps at the sinc's zeros (all of phase 0 but the
    centre) are left out.
    """
    taps = np.asarray(firwin(2 * _HALF_TAPS + 1, 1.0 / OVERSAMPLING, window=("kaiser", 5.0)))
    filt = taps.astype(np.float32) * np.float32(OVERSAMPLING)
    phases = []
    for phase in range(OVERSAMPLING):
        phases.append(
            tuple(
                (filt[tap], (phase + _HALF_TAPS - tap) // OVERSAMPLING)
                for tap in range(phase, len(filt), OVERSAMPLING)
                if abs(float(filt[tap])) > 1e-6
            )
        )
    return tuple(phases)


def _peaks_between(pcm: Pcm, start: int, stop: int) -> Pcm:
    """True-peak envelope of ``pcm[start:stop]`` (the signal is silent outside ``pcm``)."""
    size = stop - start
    padded = np.zeros(size + 2 * _REACH, np.float32)
    lo, hi = max(0, start - _REACH), min(len(pcm), stop + _REACH)
    padded[lo - start + _REACH : hi - start + _REACH] = pcm[lo:hi]
    phases = _polyphase_taps()
    ((centre, _),) = phases[0]
    peaks = np.abs(padded[_REACH : _REACH + size])
    peaks *= centre
    branch = np.empty(size, np.float32)
    term = np.empty(size, np.float32)
    for taps in phases[1:]:
        (first, offset), rest = taps[0], taps[1:]
        np.multiply(padded[_REACH + offset : _REACH + offset + size], first, out=branch)
        for coefficient, offset in rest:
            np.multiply(padded[_REACH + offset : _REACH + offset + size], coefficient, out=term)
            branch += term
        np.abs(branch, out=branch)
        np.maximum(peaks, branch, out=peaks)
    return peaks


def _oversampled_peaks(pcm: Pcm) -> Pcm:
    """Per input sample, the highest absolute value of the 4x oversampled signal after it.

    Equals ``abs(resample_poly(pcm, 4, 1))`` taken four at a time (to float32
    rounding), computed a cache-sized chunk at a time without the 4x-long array.
    """
    pcm = np.asarray(pcm, np.float32)
    out = np.empty(len(pcm), np.float32)
    for start in range(0, len(pcm), CHUNK_SAMPLES):
        stop = min(len(pcm), start + CHUNK_SAMPLES)
        out[start:stop] = _peaks_between(pcm, start, stop)
    return out


def true_peak(pcm: Pcm) -> float:
    """True peak of ``pcm`` as a linear amplitude (4x oversampled), 0 for silence."""
    pcm = np.asarray(pcm, np.float32)
    top = 0.0
    for start in range(0, len(pcm), CHUNK_SAMPLES):
        stop = min(len(pcm), start + CHUNK_SAMPLES)
        lo, hi = max(0, start - _REACH), min(len(pcm), stop + _REACH)
        if pcm[lo:hi].any():
            top = max(top, float(_peaks_between(pcm, start, stop).max()))
    return top


def true_peak_dbtp(pcm: Pcm) -> float:
    """True peak of ``pcm`` in dBTP (4x oversampled), -inf for silence."""
    return gain_to_db(true_peak(pcm))


# --------------------------------------------------------------------------- loudness


@cache
def _k_weighting(sample_rate_hz: int) -> Floats:
    """BS.1770's K-weighting as second-order sections, from pyloudnorm's own filter class.

    The same two stages, with the same coefficients, as ``pyloudnorm.Meter``'s
    "K-weighting" (it runs them one after the other from rest, as sosfilt does).
    """
    stages = (
        IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sample_rate_hz, "high_shelf"),
        IIRfilter(0.0, 0.5, 38.0, sample_rate_hz, "high_pass"),
    )
    rows = [np.concatenate((stage.b * stage.passband_gain, stage.a)) for stage in stages]
    return np.asarray(rows, np.float64)


@dataclass(frozen=True, slots=True)
class _Energy:
    """A sound's K-weighted energy (ring-out included) as the loudness sums need it."""

    at_edges: Floats
    """Cumulative energy at the sound's needed edges (the last is its whole span)."""
    steps: Floats | None
    """Energy per 8 samples, for estimates under a moving gain (None if not kept)."""


def _k_energy(pcm: Pcm, edges: Indices, sample_rate_hz: int, *, keep_steps: bool) -> _Energy:
    """K-weighted energy of ``pcm`` followed by silence, cumulated at ``edges``.

    ``edges`` are sorted sample counts in [1, len(pcm) + K_TAIL_SAMPLES]: entry i is
    the energy of the first ``edges[i]`` samples. Filtered a chunk at a time
    (carrying the filter state), so a long signal needs no long float64 copy.
    """
    sos = _k_weighting(sample_rate_hz)
    span = len(pcm) + K_TAIL_SAMPLES
    state = np.zeros((sos.shape[0], 2))
    at_edges = np.empty(len(edges))
    steps = np.empty(-(-span // _ENERGY_STEP)) if keep_steps else None
    carried = 0.0
    found = 0
    for start in range(0, span, CHUNK_SAMPLES):
        stop = min(span, start + CHUNK_SAMPLES)
        chunk = np.zeros(stop - start)
        have = max(0, min(len(pcm), stop) - start)
        chunk[:have] = pcm[start : start + have]
        filtered, state = sosfilt(sos, chunk, zi=state)
        energy = filtered * filtered
        if steps is not None:  # chunks are whole steps except the last
            first = start // _ENERGY_STEP
            whole = len(energy) // _ENERGY_STEP * _ENERGY_STEP
            count = whole // _ENERGY_STEP
            steps[first : first + count] = energy[:whole].reshape(-1, _ENERGY_STEP).sum(axis=1)
            if whole < len(energy):
                steps[first + count] = energy[whole:].sum()
        cumulative = np.cumsum(energy)
        cumulative += carried
        until = int(np.searchsorted(edges, stop, side="right"))
        at_edges[found:until] = cumulative[edges[found:until] - start - 1]
        found = until
        carried = float(cumulative[-1])
    return _Energy(at_edges, steps)


Gain = float | Pcm
"""A sound's gain: one number, or one per sample where the limiter acts."""


def _gated(mean_square: Floats) -> float:
    """Integrated loudness from the mean square of each gating block, gated as pyloudnorm does.

    BS.1770-4: blocks at or above -70 LUFS, then blocks above both -70 LUFS and the
    mean of the first set minus 10 LU (the same comparisons and means as
    ``pyloudnorm.Meter.integrated_loudness``, so the same result).
    """
    with np.errstate(divide="ignore"):
        blocks = -0.691 + 10.0 * np.log10(mean_square)
    audible = blocks >= -70.0
    if not audible.any():
        return -math.inf
    relative_gate = -0.691 + 10.0 * math.log10(float(mean_square[audible].mean())) - 10.0
    gated = (blocks > relative_gate) & (blocks > -70.0)
    if not gated.any():
        return -math.inf
    return -0.691 + 10.0 * math.log10(float(mean_square[gated].mean()))


class PlacedLoudness(Generic[K]):
    """Integrated loudness of a track of sounds placed in silence, exactly, without mixing it.

    ``placements`` lists ``(start sample, key)``; the track is ``total_samples``
    long. The gating blocks are pyloudnorm's (block j spans samples
    ``int(0.4 * (j * 0.25) * rate)`` to ``int(0.4 * (j * 0.25 + 1) * rate)``, cut at the
    end of the track). Each block's energy is the sum over placements of the sound's
    cumulative K-weighted energy at the block's two edges, so each distinct sound
    is K-weighted once (at unit gain) and only its energy at the edges its
    placements fall on is kept. A plain gain scales that exactly; a limiter's
    gain envelope is estimated from the energy per 8 samples (for the gain
    search); :meth:`measure` gives the exact energy of a levelled sound.
    """

    def __init__(
        self,
        sounds: Mapping[K, Pcm],
        placements: Sequence[tuple[int, K]],
        total_samples: int,
        sample_rate_hz: int,
        *,
        estimates: bool = True,
    ) -> None:
        self.rate = sample_rate_hz
        self.lengths = {key: len(pcm) for key, pcm in sounds.items()}
        self._block_samples = GATING_BLOCK_S * sample_rate_hz
        step = 1.0 - _BLOCK_OVERLAP
        duration_s = total_samples / sample_rate_hz
        n_blocks = max(
            1, int(np.round((duration_s - GATING_BLOCK_S) / (GATING_BLOCK_S * step))) + 1
        )
        block = np.arange(n_blocks)
        # The same float arithmetic as pyloudnorm, truncated the same way.
        lower = (GATING_BLOCK_S * (block * step) * sample_rate_hz).astype(np.int64)
        upper = (GATING_BLOCK_S * (block * step + 1) * sample_rate_hz).astype(np.int64)
        ends = np.minimum(np.concatenate((lower, upper)), total_samples)
        self._edges, where = np.unique(ends, return_inverse=True)
        self._lower, self._upper = where[:n_blocks], where[n_blocks:]

        # Per placement: the track edges inside its span, as positions in the sound's
        # own list of needed edges.
        relative: dict[K, list[Indices]] = {key: [] for key in sounds}
        spans: list[tuple[K, int, int, Indices]] = []
        for start, key in placements:
            span = self.lengths[key] + K_TAIL_SAMPLES
            lo = int(np.searchsorted(self._edges, start, side="right"))
            hi = int(np.searchsorted(self._edges, start + span, side="right"))
            inside = self._edges[lo:hi] - start
            relative[key].append(inside)
            spans.append((key, lo, hi, inside))
        self.needed: dict[K, Indices] = {}
        for key, parts in relative.items():
            span = self.lengths[key] + K_TAIL_SAMPLES
            self.needed[key] = np.unique(np.concatenate([*parts, [span]]).astype(np.int64))
        self._placed = [
            (key, lo, hi, np.searchsorted(self.needed[key], inside))
            for key, lo, hi, inside in spans
        ]
        self._unit = {
            key: _k_energy(pcm, self.needed[key], sample_rate_hz, keep_steps=estimates)
            for key, pcm in sounds.items()
        }

    def measure(self, key: K, pcm: Pcm) -> Floats:
        """Exact cumulative energy of ``pcm`` (sound ``key`` as levelled) at its needed edges."""
        return _k_energy(pcm, self.needed[key], self.rate, keep_steps=False).at_edges

    def energy(self, key: K, gain: Gain = 1.0) -> Floats:
        """Cumulative energy of sound ``key`` times ``gain`` at its needed edges.

        Exact for a plain gain; for a gain envelope, an estimate (see :meth:`estimate`).
        """
        if isinstance(gain, float):
            return self._unit[key].at_edges * (gain * gain)
        squared = np.asarray(gain[::_ENERGY_STEP], np.float64) ** 2
        return self.estimate(key, lambda steps: np.resize(squared, steps))

    def estimate(self, key: K, squared_steps: Callable[[int], Floats]) -> Floats:
        """Estimated cumulative energy of sound ``key`` under a slowly moving gain.

        ``squared_steps(n)`` gives the squared gain at samples 0, 8, 16, ... (n values
        covering the sound); it scales the energy of each 8 samples, and the
        ring-out after the sound follows the last gain. Edges round to the nearest
        8 samples.
        """
        unit = self._unit[key]
        if unit.steps is None:
            raise ValueError("energy estimates were not kept (estimates=False)")
        in_sound = -(-self.lengths[key] // _ENERGY_STEP)
        squared = squared_steps(in_sound)[:in_sound]
        tail = np.full(len(unit.steps) - in_sound, squared[-1] if in_sound else 1.0)
        weighted = unit.steps * np.concatenate((squared, tail))
        cumulative = np.concatenate(([0.0], np.cumsum(weighted)))
        needed = self.needed[key]
        at = np.minimum((needed + _ENERGY_STEP // 2) // _ENERGY_STEP, len(cumulative) - 1)
        at[-1] = len(cumulative) - 1  # the whole span
        return np.asarray(cumulative[at], np.float64)

    def block_mean_squares(self, energies: Mapping[K, Floats]) -> Floats:
        """Mean square of the K-weighted track in each gating block (pyloudnorm's ``z``)."""
        track = np.zeros(len(self._edges))
        after = np.zeros(len(self._edges) + 1)  # whole spans ending before an edge
        for key, lo, hi, positions in self._placed:
            cumulative = energies[key]
            track[lo:hi] += cumulative[positions]
            after[hi] += cumulative[-1]
        track += np.cumsum(after)[:-1]
        block = track[self._upper] - track[self._lower]
        # Silent blocks: rounding in the sums must not make them negative.
        return np.maximum(block, 0.0) * (1.0 / self._block_samples)

    def lufs_of(self, energies: Mapping[K, Floats]) -> float:
        """Integrated loudness for each sound's cumulative energy (see :meth:`energy`)."""
        return _gated(self.block_mean_squares(energies))

    def lufs(self, gains: Mapping[K, Gain] | None = None) -> float:
        """Integrated loudness of the track with each sound times its gain (default 1)."""
        gains = gains or {}
        return self.lufs_of({key: self.energy(key, gains.get(key, 1.0)) for key in self._unit})


def integrated_loudness_lufs(pcm: Pcm, sample_rate_hz: int) -> float:
    """Integrated loudness of ``pcm`` in LUFS (as pyloudnorm measures it); -inf for silence.

    The whole signal as one placed sound: K-weighted a chunk at a time, so it
    needs no float64 copy of a long track.
    """
    placed: PlacedLoudness[int] = PlacedLoudness(
        {0: np.asarray(pcm, np.float32)}, [(0, 0)], len(pcm), sample_rate_hz, estimates=False
    )
    return placed.lufs()


# --------------------------------------------------------------------------- limiter


@dataclass(frozen=True, slots=True)
class _Limited:
    """A sound's gain at one overall gain: plain, except where the limiter turns it down."""

    gain: float
    """The overall gain, applied everywhere outside the limiter's regions."""
    regions: tuple[tuple[int, int], ...]
    """``(start, stop)`` sample ranges where the limiter computed the gain."""
    index: Indices
    """The samples of all regions, in order."""
    values: Pcm
    """The gain at those samples."""
    estimated_peak: float
    """The highest of the true-peak envelope times the gain."""

    def envelope(self, length: int) -> Gain:
        """The gain as one number, or one per sample if the limiter acts."""
        if not self.regions:
            return self.gain
        local = np.full(length, self.gain, np.float32)
        local[self.index] = self.values
        return local

    def squared_steps(self, steps: int) -> Floats:
        """The squared gain every 8 samples (at samples 0, 8, ...), ``steps`` long."""
        squared = np.full(steps, self.gain * self.gain)
        offset = 0  # where each region's values start in ``values``
        for lo, hi in self.regions:
            first = -(-lo // _ENERGY_STEP)  # the first step inside the region
            on_steps = self.values[offset + first * _ENERGY_STEP - lo : offset + hi - lo]
            picked = np.asarray(on_steps[::_ENERGY_STEP], np.float64)
            squared[first : first + len(picked)] = picked * picked
            offset += hi - lo
        return squared

    def apply(self, pcm: Pcm) -> Pcm:
        """``pcm`` times this gain (a new float32 array)."""
        out = _scaled(pcm, self.gain)
        if self.regions:
            out[self.index] = pcm[self.index] * self.values
        return out


def _limiter(peaks: Pcm, sample_rate_hz: int, gain: float, ceiling: float) -> _Limited:
    """The limiter of :func:`_limiter_gain`, computed only around the peaks it turns down.

    Only samples whose peak times ``gain`` exceeds the ceiling need less gain, and
    they move the gain at most ``hold + 2 * ramp`` samples away (hold and look-ahead
    of the minimum, then the ramp of the average). Peaks closer than twice that
    share a region, and each region reaches that far beyond its first and last
    peak, so it starts and ends with more than the filters' reach of samples
    needing no reduction. The regions are therefore filtered back to back as one
    array: the filters see the same values as over the whole sound, and the rest
    of the sound (most of it) keeps the plain gain.
    """
    loudest = float(peaks.max(initial=0.0)) * gain
    nothing = np.zeros(0, np.int64)
    if loudest <= ceiling:
        return _Limited(gain, (), nothing, np.zeros(0, np.float32), loudest)
    hold = sample_rate_hz * LIMITER_HOLD_MS // 1000
    ramp = sample_rate_hz * LIMITER_RAMP_MS // 1000
    reach = hold + 2 * ramp
    over = np.flatnonzero(peaks * np.float32(gain) > ceiling)
    breaks = np.flatnonzero(np.diff(over) > 2 * reach)
    firsts = over[np.concatenate(([0], breaks + 1))].tolist()
    lasts = over[np.concatenate((breaks, [len(over) - 1]))].tolist()
    regions = tuple(
        (max(0, first - reach), min(len(peaks), last + reach + 1))
        for first, last in zip(firsts, lasts, strict=True)
    )
    index = np.concatenate([np.arange(lo, hi) for lo, hi in regions])
    scaled = peaks[index] * np.float32(gain)
    needed = np.minimum(1.0, ceiling / np.maximum(scaled, 1e-12))
    min_size, mean_size = hold + ramp + 1, ramp + 1
    held = minimum_filter1d(needed, min_size, mode="nearest", origin=min_size // 2 - hold)
    smooth = uniform_filter1d(held, mean_size, mode="nearest", origin=mean_size // 2 - ramp)
    values = np.asarray(smooth * np.float32(gain), np.float32)
    return _Limited(gain, regions, index, values, float((peaks[index] * values).max()))


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
    enough. The new peak is estimated from the envelope (:func:`_levelled_peak`
    gives the exact one).
    """
    limited = _limiter(peaks, sample_rate_hz, gain, ceiling)
    return limited.envelope(len(peaks)), limited.estimated_peak


def _levelled_peak(levelled: Pcm, peaks: Pcm, limited: _Limited) -> float:
    """Exact true peak of ``levelled`` (a sound times ``limited``; ``peaks`` at unit gain).

    Where the gain is the plain number (outside the limiter's regions, by the
    oversampling filter's reach) the levelled envelope is exactly ``peaks`` times
    it; only the regions are oversampled again.
    """
    if not limited.regions:
        return float(peaks.max(initial=0.0)) * limited.gain
    plain = np.ones(len(peaks), bool)
    top = 0.0
    for lo, hi in limited.regions:
        lo, hi = max(0, lo - _REACH), min(len(peaks), hi + _REACH)
        plain[lo:hi] = False
        top = max(top, float(_peaks_between(levelled, lo, hi).max(initial=0.0)))
    return max(top, float(peaks[plain].max(initial=0.0)) * limited.gain)


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


def level_sounds(
    sounds: Mapping[K, Pcm],
    placements: Sequence[tuple[int, K]],
    total_samples: int,
    sample_rate_hz: int,
    *,
    target_lufs: float = TARGET_LUFS,
    ceiling_dbtp: float = MAX_TRUE_PEAK_DBTP,
) -> tuple[dict[K, Pcm], LoudnessReport]:
    """Level a track made of distinct sounds: one gain for all, each limited on its own.

    ``placements`` lists ``(start sample, sound key)`` for every placed sound in a
    track ``total_samples`` long. Limiting lowers the loudness, so the gain and
    the limiter go round a few times (secant steps, with :class:`PlacedLoudness`'s
    estimates) until the loudness is within 0.02 LU of the target. Then the
    result is measured exactly: each limited sound's levelled samples are
    K-weighted again and oversampled again where the limiter acted (a sound that
    still peaks over the ceiling is turned down by the excess); plain gains scale
    the unit measures. If that exact loudness misses the target by more than
    0.02 LU the gain is corrected and measured again.

    Returns the levelled sounds (float32) and what was done.
    """
    ceiling = db_to_gain(ceiling_dbtp)
    placed: PlacedLoudness[K] = PlacedLoudness(sounds, placements, total_samples, sample_rate_hz)
    loudness = placed.lufs()
    if not math.isfinite(loudness):  # nothing audible: nothing to level
        return dict(sounds), LoudnessReport(loudness, -math.inf, 0.0, 0)
    peaks = {key: _oversampled_peaks(pcm) for key, pcm in sounds.items()}

    def limit_at(gain_db: float) -> dict[K, _Limited]:
        """Each sound's gain (limited where needed) at this overall gain."""
        gain = db_to_gain(gain_db)
        return {key: _limiter(peaks[key], sample_rate_hz, gain, ceiling) for key in sounds}

    # Find the gain whose limited result measures target_lufs. Limiting makes the
    # loudness grow more slowly than the gain, so step along the measured slope
    # (secant method), starting from the slope of plain gain (1 LU per dB).
    gain_db, slope = target_lufs - loudness, 1.0
    last: tuple[float, float] | None = None
    for _ in range(10):
        limits = limit_at(gain_db)
        measured = placed.lufs_of(
            {
                key: placed.estimate(key, limited.squared_steps)
                if limited.regions
                else placed.energy(key, limited.gain)
                for key, limited in limits.items()
            }
        )
        error_db = target_lufs - measured
        if abs(error_db) < SEARCH_TOLERANCE_LU:
            break
        if last is not None and gain_db != last[0]:
            slope = min(1.0, max(0.1, (measured - last[1]) / (gain_db - last[0])))
        last = (gain_db, measured)
        gain_db += error_db / slope

    for _ in range(3):
        levelled: dict[K, Pcm] = {}
        energies: dict[K, Floats] = {}
        top = 0.0
        for key, pcm in sounds.items():
            limited = limits[key]
            levelled[key] = limited.apply(pcm)
            peak = _levelled_peak(levelled[key], peaks[key], limited)
            if not limited.regions:  # linear: the unit measures scale exactly
                energies[key] = placed.energy(key, limited.gain)
            else:
                if peak > ceiling:  # the smooth gain let a peak through: turn it down
                    levelled[key] *= np.float32(ceiling / peak)
                    peak = ceiling
                energies[key] = placed.measure(key, levelled[key])
            top = max(top, peak)
        loudness = placed.lufs_of(energies)
        if abs(target_lufs - loudness) <= SEARCH_TOLERANCE_LU:
            break
        gain_db += target_lufs - loudness
        limits = limit_at(gain_db)
    turned_down = sum(1 for limited in limits.values() if limited.regions)
    return levelled, LoudnessReport(loudness, gain_to_db(top), gain_db, turned_down)


# --------------------------------------------------------------------------- small speaker

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
