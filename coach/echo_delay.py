"""Where the coach's echo sits in the microphone, measured from the two signals themselves.

An echo canceller's filter only covers echoes that arrive after the reference, within its
length, and a filter that has adapted to one delay is wrong for any other. Device time
stamps place the reference only to tens of ms and can jump (a stalled callback, a
dropped block), so the live session also measures the delay: the generalised
cross-correlation with phase transform (GCC-PHAT) of the microphone against the
reference it was handed, over the last second, while the coach is talking.

The canceller adapts to whatever delay it finds, as long as the echo arrives after the
reference and well within its filter; what it cannot stand is the delay changing (an
underflow or a stalled callback shifts it by 5-15 ms, and the adapted filter is then
wrong for seconds). So the first trusted delay is kept when it is usable, and whenever
two measurements in a row agree that the echo has moved away from it, the reference is
moved back to restore it; only an unusable delay (too short, or too near the end of
the filter) is replaced by ``preferred_ms``.

Two agreeing one-second measurements take about 1.5-2 s after the echo moved, and until
then the canceller's filter is wrong. When the speaker is known to have fallen behind (an
underflow: ``add(..., after_gap=True)``), the delay is measured again as soon as
``quick_window_ms`` of the microphone lie after the gap (and the coach's voice, not only
its start, is in it: ``MIN_PLAYING_SHARE``), and one clear measurement is enough. In a live
e2e run an underflow moved the echo by 18 ms, and the reference was moved back 1.5-1.8 s
later; meanwhile the coach's own words came through as a false command.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from coach.listen.echo import frame_energies

SAMPLE_RATE_HZ = 16_000
PLAYING_RMS = 0.01
"""Reference RMS (of full scale) above which the coach counts as talking (-40 dBFS)."""
MIN_PLAYING_SHARE = 0.25
"""The quick measurement after a gap counts only when the coach was talking in at least this
share of the 10 ms frames whose echo its microphone window holds (at the delay expected).
Just after the coach starts talking again, the window holds its voice but hardly any of
its echo, and the correlation peaks anywhere, prominent or not: with the coach's own
voice after a 1.2 s pause and a speaker gap (tests/test_echo_delay.py), the quick
measurement moved the reference by 88-89 ms 100-200 ms into the sentence, though the echo
had not moved, and the usual measurements moved it back 1.8 s later; a bench_live
recording showed the same (86 ms, about 100 ms in, moved back 1.8 s later). The
reference's level over the window alone let those through. A real jump after a pause is
now undone 180-280 ms into the sentence (before: 120-280 ms, but in 3 of 6 cases the
reference first went 86 ms the wrong way). A gap inside a sentence
(scripts/bench_underflow.py, vosk-ko, 25 sentences, against the rule before) costs what
it did: 45 of 100 commands said after it heard both times, and the coach's own voice gave
5 commands instead of 4. A share of 0.5 heard 34, and so did 0.5 applied to the usual
measurements as well (two agreeing measurements already guard those)."""


def gcc_phat_lag(
    mic: npt.NDArray[np.float64], ref: npt.NDArray[np.float64], max_lag: int, min_lag: int
) -> tuple[int, float]:
    """The lag (samples the mic lags ``ref``) in ``[min_lag, max_lag]`` with the strongest
    phase-transform correlation, and how far that peak stands above the rest (peak over
    the RMS of the other lags; above ~8 a real echo, below ~5 noise).

    ``mic[i]`` and ``ref[i]`` must be simultaneous samples (same length).
    """
    n = len(mic) + len(ref)
    size = 1 << (n - 1).bit_length()
    cross = np.fft.rfft(mic, size) * np.conj(np.fft.rfft(ref, size))
    cross /= np.maximum(np.abs(cross), 1e-12)
    corr = np.fft.irfft(cross, size)
    # Lag k >= 0 sits at corr[k]; negative lags wrap around to the end.
    lags = np.arange(min_lag, max_lag + 1)
    values = corr[lags % size]
    best = int(np.argmax(values))
    others = np.delete(values, slice(max(best - 16, 0), best + 17))
    spread = float(np.sqrt(np.mean(others * others))) if others.size else 0.0
    return int(lags[best]), float(values[best] / max(spread, 1e-12))


class EchoDelayTracker:
    """Feeds on (microphone, reference handed out) block pairs; says when to move the
    reference and by how much.

    ``add`` returns a correction in samples: a positive one means hand out later parts
    of the played stream (the echo came sooner than the target), a negative one earlier
    parts. A correction is only given when two measurements in a row agree within
    ``agree_ms`` and differ from the target by more than ``tolerance_ms``. The target is
    the first agreed delay if it lies within ``usable_ms``, else ``preferred_ms``.
    """

    def __init__(
        self,
        preferred_ms: int = 40,
        usable_ms: tuple[int, int] = (10, 120),
        window_ms: int = 1000,
        every_ms: int = 500,
        max_lag_ms: int = 300,
        tolerance_ms: int = 4,
        agree_ms: int = 1,
        min_prominence: float = 8.0,
        quick_window_ms: int = 400,
        quick_for_ms: int = 2000,
    ) -> None:
        ms = SAMPLE_RATE_HZ // 1000
        self._preferred = preferred_ms * ms
        self._usable = (usable_ms[0] * ms, usable_ms[1] * ms)
        self.target: int | None = None
        """Samples the echo should lag the reference (None until first measured)."""
        self._window = window_ms * ms
        self._every = every_ms * ms
        self._max_lag = max_lag_ms * ms
        self._min_lag = -100 * ms
        self._tolerance = tolerance_ms * ms
        self._agree = agree_ms * ms
        self._min_prominence = min_prominence
        self._quick_window = quick_window_ms * ms
        self._quick_for = quick_for_ms * ms
        self._since_gap: int | None = None
        """Microphone samples since the speaker's last gap, while a quick measurement is
        due (None: none is)."""
        self._mic = np.zeros(0, np.float64)
        self._ref = np.zeros(0, np.float64)
        self._since = 0
        self._last: int | None = None
        self.lag: int | None = None
        """The latest trusted measurement: samples the echo lags the reference."""
        self.corrections = 0

    @property
    def measuring_gap(self) -> bool:
        """Whether a measurement after a speaker gap is still due (``add``'s ``after_gap``)."""
        return self._since_gap is not None

    def add(
        self, mic: npt.NDArray[np.int16], ref: npt.NDArray[np.int16], after_gap: bool = False
    ) -> int:
        """Account for one block pair; the correction to apply now (0: none).

        ``after_gap``: the reference handed out with this block reached a point where the
        speaker fell behind (``coach.live.EchoReference.crossed_gap``).
        """
        keep = self._window + self._max_lag
        self._mic = np.concatenate([self._mic, mic.astype(np.float64) / 32768.0])[-keep:]
        self._ref = np.concatenate([self._ref, ref.astype(np.float64) / 32768.0])[-keep:]
        self._since += len(mic)
        if after_gap and self.target is not None:
            self._since_gap = 0
            self._last = None  # a measurement spanning the gap is no witness
        if self._since_gap is not None:
            self._since_gap += len(mic)
            return self._quick()
        if self._since < self._every or len(self._mic) < keep:
            return 0
        self._since = 0
        lag = self._measure(self._window)
        if lag is None:
            self._last = None
            return 0
        agreed = self._last is not None and abs(lag - self._last) <= self._agree
        self._last = lag
        if not agreed:
            return 0
        self.lag = lag
        if self.target is None:
            usable = self._usable[0] <= lag <= self._usable[1]
            self.target = lag if usable else self._preferred
        return self._correct(lag)

    def _measure(self, window: int, playing_share: float = 0.0) -> int | None:
        """The lag over the last ``window`` microphone samples, if the coach was talking
        (in at least ``playing_share`` of the frames whose echo the window holds, at the
        delay expected: ``MIN_PLAYING_SHARE``) and the echo stands out; else None."""
        if len(self._mic) < window + self._max_lag:
            return None
        recent = self._ref[-window:]
        if float(np.sqrt(np.mean(recent * recent))) < PLAYING_RMS:
            return None
        if playing_share > 0.0:
            expected = self.target or 0
            heard = self._ref[len(self._ref) - window - expected : len(self._ref) - expected]
            playing = frame_energies(heard) >= PLAYING_RMS * PLAYING_RMS
            if np.mean(playing) < playing_share:
                return None
        mic_window = np.zeros(window + self._max_lag)
        mic_window[-window:] = self._mic[-window:]
        ref = self._ref[-(window + self._max_lag) :]
        lag, prominence = gcc_phat_lag(mic_window, ref, self._max_lag, self._min_lag)
        return lag if prominence >= self._min_prominence else None

    def _quick(self) -> int:
        """After a gap: one clear measurement over the microphone since the gap's echo
        arrived corrects; until one is clear (the coach may be quiet), or for at most
        ``quick_for_ms``, the usual measurements wait."""
        assert self._since_gap is not None and self.target is not None
        if self._since_gap < self.target + self._quick_window:
            return 0
        if self._since_gap > self.target + self._quick_window + self._quick_for:
            self._since_gap = None
            return 0
        lag = self._measure(self._quick_window, MIN_PLAYING_SHARE)
        if lag is None:
            return 0
        self._since_gap = None
        self._since = 0
        self.lag = lag
        return self._correct(lag)

    def _correct(self, lag: int) -> int:
        """The correction that brings a measured ``lag`` back to the target (0: none)."""
        assert self.target is not None
        if abs(lag - self.target) <= self._tolerance:
            return 0
        # The history no longer matches the reference once it moves: measure afresh.
        self._mic = self._mic[:0]
        self._ref = self._ref[:0]
        self._last = None
        self.corrections += 1
        return self.target - lag
