"""Fake PortAudio streams for audio unit tests: the test calls the callback by hand."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt


class FakeStream:
    """Records how it was opened; ``pump`` runs the callback like PortAudio would."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.callback: Callable[..., None] = kwargs["callback"]
        self.finished: Callable[[], None] = kwargs["finished_callback"]
        self.samplerate = float(kwargs["samplerate"])
        self.blocksize = int(kwargs["blocksize"])
        self.channels = int(kwargs["channels"])
        self.latency = 0.04
        self.time = 100.0
        self.dac_delay_s = 0.06
        self.started = False
        self.stopped = False
        self.closed = False

    @property
    def active(self) -> bool:
        return self.started and not self.stopped

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True

    def pump(self, blocks: int = 1, status: object = None) -> npt.NDArray[np.float32]:
        """Ask for ``blocks`` output blocks, each callback given ``status``; returns what
        was written (frames x channels)."""
        written = []
        for _ in range(blocks):
            out = np.full((self.blocksize, self.channels), np.nan, dtype=np.float32)
            info = SimpleNamespace(
                currentTime=self.time,
                outputBufferDacTime=self.time + self.dac_delay_s,
                inputBufferAdcTime=0.0,
            )
            self.callback(out, self.blocksize, info, status)
            written.append(out)
            self.time += self.blocksize / self.samplerate
        return np.concatenate(written)

    def feed(self, pcm: npt.NDArray[np.float32], adc_age_s: float = 0.6) -> None:
        """Deliver microphone samples in blocks of ``blocksize`` (input streams).

        PortAudio says each block was captured ``adc_age_s`` before its callback; 0.6 s is
        what it said through PulseAudio (implausible: the audio arrived within ~60 ms).
        """
        for start in range(0, len(pcm) - self.blocksize + 1, self.blocksize):
            block = pcm[start : start + self.blocksize].reshape(-1, 1)
            self.time += self.blocksize / self.samplerate
            info = SimpleNamespace(
                currentTime=self.time,
                outputBufferDacTime=0.0,
                inputBufferAdcTime=self.time - adc_age_s,
            )
            self.callback(block, self.blocksize, info, None)


class FakeStreams:
    """A stream factory remembering every stream it made."""

    def __init__(self, refuse_channels: int | None = None) -> None:
        self.made: list[FakeStream] = []
        self.refuse_channels = refuse_channels

    def __call__(self, **kwargs: Any) -> FakeStream:
        if kwargs.get("channels") == self.refuse_channels:
            raise ValueError(f"Invalid number of channels: {self.refuse_channels}")
        stream = FakeStream(**kwargs)
        self.made.append(stream)
        return stream

    @property
    def last(self) -> FakeStream:
        return self.made[-1]


def tone(freq_hz: float, duration_ms: int, sample_rate_hz: int, amplitude: float = 0.5) -> Any:
    """A float32 sine."""
    n = sample_rate_hz * duration_ms // 1000
    t = np.arange(n) / sample_rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
