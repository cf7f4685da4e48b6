"""Earcons: exact lengths, no clicks, speaker-friendly band, gentle level, distinct sounds."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from coach.earcons import EARCON_MS, EARCON_PEAK_DBFS, earcon, earcon_samples
from coach.timeline import Earcon

RATES_HZ = [16000, 22050, 44100, 48000]


@pytest.mark.parametrize("rate_hz", RATES_HZ)
@pytest.mark.parametrize("kind", list(Earcon))
def test_length_dtype_and_level(kind: Earcon, rate_hz: int) -> None:
    tone = earcon(kind, rate_hz)
    assert tone.dtype == np.float32 and tone.ndim == 1
    assert len(tone) == earcon_samples(kind, rate_hz)
    assert abs(len(tone) / rate_hz * 1000 - EARCON_MS[kind]) <= 0.5 * 1000 / rate_hz + 1e-9
    peak_dbfs = 20 * np.log10(float(np.max(np.abs(tone))))
    assert peak_dbfs == pytest.approx(EARCON_PEAK_DBFS, abs=0.1)


def test_every_kind_has_a_duration() -> None:
    assert set(EARCON_MS) == set(Earcon)


@pytest.mark.parametrize("rate_hz", RATES_HZ)
@pytest.mark.parametrize("kind", list(Earcon))
def test_no_clicks(kind: Earcon, rate_hz: int) -> None:
    tone = earcon(kind, rate_hz).astype(np.float64)
    peak = float(np.max(np.abs(tone)))
    # Edges start and end at silence.
    edge = max(1, rate_hz // 1000)  # 1 ms
    assert abs(tone[0]) < 1e-6 and abs(tone[-1]) < 1e-6
    assert np.max(np.abs(tone[:edge])) < 0.05 * peak
    assert np.max(np.abs(tone[-edge:])) < 0.05 * peak
    # No sample-to-sample jump larger than a 2 kHz sine at the earcon's peak could make.
    limit = peak * 2 * np.pi * 2000 / rate_hz
    assert float(np.max(np.abs(np.diff(tone)))) <= limit
    # And no jump in the slope either: a click is broadband, the second difference shows it.
    assert float(np.max(np.abs(np.diff(tone, 2)))) <= peak * (2 * np.pi * 2000 / rate_hz) ** 2 * 1.5


@pytest.mark.parametrize("kind", list(Earcon))
def test_energy_sits_in_the_small_speaker_band(kind: Earcon) -> None:
    rate_hz = 48000
    tone = earcon(kind, rate_hz).astype(np.float64)
    power = np.abs(np.fft.rfft(tone)) ** 2
    freqs = np.fft.rfftfreq(len(tone), 1 / rate_hz)
    in_band = power[(freqs >= 400) & (freqs <= 2000)].sum() / power.sum()
    assert in_band > 0.97


def _contour(
    tone: npt.NDArray[np.float32], rate_hz: int, frames: int = 24
) -> npt.NDArray[np.float64]:
    """Spectral centroid (Hz) over ``frames`` equal slices: the pitch shape of the earcon."""
    x = tone.astype(np.float64)
    out = []
    for chunk in np.array_split(x, frames):
        power = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk)), n=4096)) ** 2
        freqs = np.fft.rfftfreq(4096, 1 / rate_hz)
        out.append(float((power * freqs).sum() / max(power.sum(), 1e-20)))
    return np.array(out)


def test_kinds_are_pairwise_distinct() -> None:
    rate_hz = 22050
    tones = {kind: earcon(kind, rate_hz) for kind in Earcon}
    contours = {kind: _contour(tone, rate_hz) for kind, tone in tones.items()}
    for a, b in itertools.combinations(Earcon, 2):
        # Different pitch shape (mean centroid distance over time) or clearly different length.
        distance_hz = float(np.mean(np.abs(contours[a] - contours[b])))
        length_ratio = max(len(tones[a]), len(tones[b])) / min(len(tones[a]), len(tones[b]))
        assert distance_hz > 60 or length_ratio > 1.5, (a, b, distance_hz)


def test_hold_start_rises_and_hold_end_falls() -> None:
    rate_hz = 22050
    start = _contour(earcon(Earcon.HOLD_START, rate_hz), rate_hz, frames=8)
    end = _contour(earcon(Earcon.HOLD_END, rate_hz), rate_hz, frames=8)
    assert start[-2] > start[1] * 1.3  # rising
    assert end[-2] < end[1] / 1.3  # falling


def test_side_switch_has_three_notes() -> None:
    rate_hz = 22050
    tone = earcon(Earcon.SIDE_SWITCH, rate_hz).astype(np.float64)
    frame = rate_hz // 100  # 10 ms
    env = np.sqrt((tone[: len(tone) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1))
    contour = _contour(earcon(Earcon.SIDE_SWITCH, rate_hz), rate_hz, frames=9)
    assert contour[4] > contour[1] * 1.2 and contour[4] > contour[7] * 1.2  # up then down
    assert env.max() > 0


def test_rejects_silly_sample_rates() -> None:
    with pytest.raises(ValueError):
        earcon(Earcon.REP_TICK, 1000)
