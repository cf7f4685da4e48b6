"""Recording and reading audio in end-to-end tests and the live benchmark.

Shared by ``tests/test_run_e2e.py`` and ``scripts/bench_live.py``: a :class:`Tap` that records
a PulseAudio source at 16 kHz, Korean commands said by espeak-ng (the only offline Vosk
weights are Korean), and the few measurements both make on recordings: 10 ms levels, where
a known sound is in a recording, and where a word's voice starts and ends.

In bench_live they run in the coach's own process, beside its audio callbacks, so nothing
here may hold the interpreter lock for long: scipy.signal is imported up front (imported in
the middle of bench_live, it took about a second of the lock and the coach's speaker
underflowed), and :meth:`Tap.pcm` joins only the blocks asked for (:func:`join_blocks`).
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile
from pulse_support import pulse_target
from scipy.signal import fftconvolve

from coach.audio import INPUT_SAMPLE_RATE_HZ, AudioBlock, Input
from coach.resample import resample
from coach.session import SessionSettings

RATE = INPUT_SAMPLE_RATE_HZ
FRAME = RATE // 100
"""10 ms at 16 kHz."""
SILENT = 0.002
"""RMS below this is silence (null sinks are digitally silent between sounds)."""

SAFETY_PAUSE_FRAMES = SessionSettings().safety_pause_ms // 10 - 5
"""10 ms frames of the silence before the safety message, less 50 ms of slack: a silence
that long after PAIN is the coach stopping, not a pause within its sentence."""

FloatPcm = npt.NDArray[np.float64]


def rms_frames(pcm: FloatPcm, frame: int = FRAME) -> FloatPcm:
    """RMS level of each whole ``frame``-sample frame."""
    n = len(pcm) // frame
    blocks = pcm[: n * frame].reshape(n, frame)
    return np.sqrt(np.mean(blocks * blocks, axis=1))


def join_blocks(
    blocks: list[npt.NDArray[np.int16]], start: int = 0, end: int | None = None
) -> npt.NDArray[np.int16]:
    """Samples ``start`` to ``end`` (default: the last) of the blocks laid end to end,
    joining only the blocks that hold them: joining a whole benchmark's recording (minutes,
    tens of MB) would hold the interpreter lock for long."""
    starts = np.cumsum([0, *(len(b) for b in blocks)])
    end = int(starts[-1]) if end is None else min(end, int(starts[-1]))
    if start >= end:
        return np.zeros(0, np.int16)
    first = int(np.searchsorted(starts, start, side="right")) - 1
    last = int(np.searchsorted(starts, end, side="left"))
    offset = int(starts[first])
    return np.concatenate(blocks[first:last])[start - offset : end - offset]


def voiced_span(pcm: FloatPcm) -> tuple[int, int]:
    """First and last sample of ``pcm`` above the silence threshold (to 10 ms)."""
    loud = np.flatnonzero(rms_frames(pcm) > SILENT * 2)
    return int(loud[0]) * FRAME, int(loud[-1] + 1) * FRAME


def find(needle: FloatPcm, haystack: FloatPcm) -> tuple[int, float]:
    """Where ``needle`` best matches in ``haystack`` and the normalised correlation there."""
    if len(haystack) < len(needle):
        return 0, 0.0
    corr = fftconvolve(haystack, needle[::-1], mode="valid")
    sums = np.concatenate([[0.0], np.cumsum(haystack * haystack)])
    energy = sums[len(needle) :] - sums[: len(sums) - len(needle)]
    norm = np.sqrt(np.maximum(energy, 1e-12)) * np.sqrt(float(np.sum(needle * needle)))
    score = corr / norm
    best = int(np.argmax(score))
    return best, float(score[best])


def speak(text: str, path: Path, voice: str = "ko") -> FloatPcm:
    """``text`` said by espeak-ng ``voice``, written to ``path``; its samples at 16 kHz."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    pcm, rate = soundfile.read(str(path), dtype="float32")
    return resample(pcm, rate, RATE).astype(np.float64)


class Tap:
    """Records a PulseAudio source (16 kHz mono) in this process from the moment it opens."""

    def __init__(self, source: str, timeout_s: float = 10.0) -> None:
        self._blocks: list[npt.NDArray[np.int16]] = []
        self._times: list[float] = []
        """PortAudio stream time of each block's first sample (one clock for all taps)."""
        self._lock = threading.Lock()
        with pulse_target(source=source):
            self._input = Input(on_block=self._keep)
        if not self._input.wait_first_block(timeout_s):
            self._input.close()
            raise RuntimeError(f"no audio from {source} within {timeout_s:g} s")

    def _keep(self, block: AudioBlock) -> None:
        with self._lock:
            self._blocks.append(block.pcm.copy())
            self._times.append(block.time_s)

    def samples(self) -> int:
        """How many samples were recorded so far."""
        with self._lock:
            return sum(len(b) for b in self._blocks)

    def pcm(self, start: int = 0, end: int | None = None) -> FloatPcm:
        """The recording from sample ``start`` (up to ``end``), as floats in [-1, 1)."""
        with self._lock:
            blocks = list(self._blocks)
        return join_blocks(blocks, start, end).astype(np.float64) / 32768.0

    def _timeline(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Each recorded block's first sample and its stream time."""
        with self._lock:
            lengths = [len(block) for block in self._blocks]
            times = list(self._times)
        if not times:
            raise ValueError("nothing recorded yet")
        return np.cumsum([0, *lengths[:-1]]), np.array(times)

    def time_of(self, sample: int) -> float:
        """The stream time (s) at which recorded sample ``sample`` left the ADC."""
        starts, times = self._timeline()
        i = max(int(np.searchsorted(starts, sample, side="right")) - 1, 0)
        return float(times[i]) + (sample - int(starts[i])) / RATE

    def sample_at(self, time_s: float) -> int:
        """The recorded sample nearest stream time ``time_s`` (its inverse of time_of)."""
        starts, times = self._timeline()
        i = max(int(np.searchsorted(times, time_s, side="right")) - 1, 0)
        return int(starts[i]) + max(round((time_s - float(times[i])) * RATE), 0)

    def recent_rms(self, ms: int) -> FloatPcm:
        """10 ms levels of the last ``ms`` recorded."""
        return rms_frames(self.pcm(max(self.samples() - ms * RATE // 1000, 0)))

    def close(self) -> None:
        """Stop recording."""
        self._input.close()


def output_sample(out: Tap, mic: Tap, sample: int) -> int:
    """The sample of the output's recording played when the microphone's recording reached
    ``sample``: the two lined up on the stream clock."""
    return out.sample_at(mic.time_of(sample))


def coach_was_speaking(out: Tap, mic: Tap, word_start: int, ms: int = 300) -> bool:
    """Whether the coach's output sounded in most of the ``ms`` before sample ``word_start``
    of the microphone's recording. Read on the output, lined up on the stream clock: the
    echo in the microphone is quieter, and its quiet syllables fall below SILENT."""
    said_at = output_sample(out, mic, word_start)
    start = max(said_at - ms * FRAME // 10, 0)
    before = rms_frames(out.pcm(start, said_at))
    return len(before) > 0 and float(np.mean(before > SILENT)) > 0.5


def silence_after(frames: FloatPcm, first: int, length: int = SAFETY_PAUSE_FRAMES) -> int | None:
    """The first 10 ms frame from ``first`` that begins ``length`` frames below SILENT."""
    return next(
        (i for i in range(first, len(frames) - length) if np.all(frames[i : i + length] < SILENT)),
        None,
    )


def speaker_quiet_after(out: Tap, mic: Tap, word_end: int) -> int | None:
    """Milliseconds from sample ``word_end`` of the microphone's recording (the end of the
    user's word) to the coach's output going quiet for the safety pause, read on the output
    itself (its null sink's monitor: what a speaker would play), lined up on the stream
    clock. None if it did not go quiet. Unlike the silence in the microphone's recording,
    this does not include the test's echo path (the loopback), which no room has."""
    quiet = silence_after(rms_frames(out.pcm(output_sample(out, mic, word_end))), 0)
    return None if quiet is None else quiet * 10


def echo_lag_ms(out: Tap, mic: Tap, before: int, ms: int = 1500) -> tuple[float, float]:
    """How long after the output the coach's own voice reached the microphone, measured on
    the two recordings lined up on the stream clock, over the ``ms`` before microphone sample
    ``before`` (the coach alone, before the user spoke): (lag in ms, match score 0..1).

    About the loopback's latency when the two taps' clocks agree, so it checks the lining
    up that :func:`speaker_quiet_after` and :func:`coach_was_speaking` rely on."""
    # Lags up to 200 ms either way; the searched stretch ends at ``before``, so the user's
    # loud word never enters the match.
    slack = 200 * RATE // 1000
    start = max(before - ms * RATE // 1000, 0)
    needle_at = output_sample(out, mic, start)
    needle = out.pcm(needle_at, needle_at + max(before - slack - start, 0))
    lo = max(start - slack, 0)
    at, score = find(needle, mic.pcm(lo, before))
    return (lo + at - start) * 1000 / RATE, score
