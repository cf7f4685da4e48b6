"""Energy voice activity segmentation: cuts a 16 kHz stream into short utterances (used to
cut the takes of `coach enroll`; the spotter itself scores every 40 ms step instead)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SAMPLE_RATE_HZ = 16_000
FRAME_SAMPLES = 160
"""10 ms frames."""
FRAME_MS = 10


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech cut out of the stream; times in ms of the input clock."""

    pcm: NDArray[np.int16]
    """The audio, including ``pre_roll_ms`` before the first voiced frame and the hang-over."""
    start_ms: int
    """Start of the first voiced frame."""
    end_ms: int
    """End of the last voiced frame (the word end)."""
    pcm_start_ms: int
    """Stream time of ``pcm[0]``."""


@dataclass(frozen=True)
class VadSettings:
    """How speech is told from background."""

    ratio_db: float = 10.0
    """A frame is voiced this far above the tracked noise floor ..."""
    min_level_dbfs: float = -62.0
    """... and above this level (mean square re full scale)."""
    onset_frames: int = 3
    """Voiced frames (within ``onset_window_frames``) that start an utterance."""
    onset_window_frames: int = 5
    hangover_ms: int = 180
    """Silence that ends an utterance (pauses inside a word or phrase are shorter)."""
    pre_roll_ms: int = 120
    """Audio kept before the first voiced frame (weak onsets such as "s", "f", "h")."""
    max_utterance_ms: int = 3000
    """Longer speech is cut here (it is not a command; the rest becomes another utterance)."""
    floor_rise_db_per_s: float = 3.0
    """How fast the noise floor may rise (it falls at once to a quieter frame)."""
    peak_range_db: float = 16.0
    """Inside an utterance, frames this far below its loudest frame count as silence:
    the word has ended even if the background behind it is louder than before."""


class Segmenter:
    """Streaming energy VAD with an adaptive noise floor; yields whole utterances."""

    def __init__(self, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        s = self.settings
        self._ratio = 10 ** (s.ratio_db / 10)
        self._min_energy = 10 ** (s.min_level_dbfs / 10)
        self._rise = 10 ** (s.floor_rise_db_per_s / 10 * FRAME_MS / 1000)
        self._floor = self._min_energy / self._ratio
        self._carry = np.zeros(0, np.int16)
        self._frames = 0  # frames consumed
        self._history: list[NDArray[np.int16]] = []  # recent frames (pre-roll + utterance)
        self._history_start = 0  # frame index of _history[0]
        self._recent: list[bool] = []  # voiced flags of the last onset window
        self._start = -1  # first voiced frame of the open utterance
        self._last_voiced = -1
        self._peak = 0.0  # loudest frame energy of the open utterance
        self._peak_ratio = 10 ** (-self.settings.peak_range_db / 10)

    @property
    def in_speech(self) -> bool:
        """Whether an utterance is open."""
        return self._start >= 0

    @property
    def stream_ms(self) -> int:
        """Whole frames consumed, in ms."""
        return self._frames * FRAME_MS

    def accept(self, pcm: NDArray[np.int16]) -> list[Utterance]:
        """Feed samples; the utterances that ended in them."""
        data = np.concatenate([self._carry, np.asarray(pcm, np.int16).reshape(-1)])
        n = len(data) // FRAME_SAMPLES
        self._carry = data[n * FRAME_SAMPLES :]
        out: list[Utterance] = []
        if n == 0:
            return out
        frames = data[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
        energies = (frames.astype(np.float64) / 32768.0) ** 2
        for frame, energy in zip(frames, energies.mean(axis=1), strict=True):
            utterance = self._frame(frame, float(energy))
            if utterance is not None:
                out.append(utterance)
        return out

    def flush(self) -> list[Utterance]:
        """End of input: the open utterance, if any."""
        if self._start < 0:
            return []
        return [self._close()]

    def _frame(self, frame: NDArray[np.int16], energy: float) -> Utterance | None:
        s = self.settings
        index = self._frames
        self._frames += 1
        self._history.append(frame)
        if index == 0:
            self._floor = max(energy, 1e-12)  # start from the background we actually hear
        voiced = energy > max(self._floor * self._ratio, self._min_energy)
        # The floor follows quieter frames at once and louder ones only slowly, so it
        # settles on the background between words rather than on speech.
        self._floor = energy if energy < self._floor else self._floor * self._rise
        self._recent = ([*self._recent, voiced])[-s.onset_window_frames :]
        if self._start < 0:
            keep = s.pre_roll_ms // FRAME_MS + s.onset_window_frames
            if len(self._history) > keep:
                drop = len(self._history) - keep
                del self._history[:drop]
                self._history_start += drop
            if sum(self._recent) >= s.onset_frames:
                first = index - len(self._recent) + 1 + self._recent.index(True)
                self._start = first
                self._last_voiced = index
                self._peak = energy
            return None
        self._peak = max(self._peak, energy)
        if voiced and energy >= self._peak * self._peak_ratio:
            self._last_voiced = index
        silent_ms = (index - self._last_voiced) * FRAME_MS
        length_ms = (index - self._start + 1) * FRAME_MS
        if silent_ms >= s.hangover_ms or length_ms >= s.max_utterance_ms:
            return self._close()
        return None

    def _close(self) -> Utterance:
        s = self.settings
        first = max(self._history_start, self._start - s.pre_roll_ms // FRAME_MS)
        pcm = np.concatenate(self._history[first - self._history_start :])
        utterance = Utterance(
            pcm=pcm,
            start_ms=self._start * FRAME_MS,
            end_ms=(self._last_voiced + 1) * FRAME_MS,
            pcm_start_ms=first * FRAME_MS,
        )
        self._history = []
        self._history_start = self._frames
        self._start = -1
        self._last_voiced = -1
        self._recent = []
        self._peak = 0.0
        return utterance


WORD_TAIL_MS = 120
"""Audio after the voiced part that still belongs to the word for classification: weak
final consonants (the release of "p" in "stop") sit below ``peak_range_db``."""


def word_span_ms(utterance: Utterance) -> tuple[int, int]:
    """Where the word lies in ``utterance.pcm``, in ms from its first sample."""
    length_ms = len(utterance.pcm) * 1000 // SAMPLE_RATE_HZ
    start = utterance.start_ms - utterance.pcm_start_ms
    return start, min(length_ms, utterance.end_ms - utterance.pcm_start_ms + WORD_TAIL_MS)
