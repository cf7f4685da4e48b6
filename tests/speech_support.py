"""Shared helpers for the voices/speech/earcons tests: real espeak-ng references and fakes."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from coach.speech import Pyttsx3Backend, SpeechBackend, trim_silence, wav_is_complete
from coach.voices import SystemVoice, VoiceProfile

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt install espeak-ng)"
)


def profile(**changes: Any) -> VoiceProfile:
    """A small English profile for tests (override any field)."""
    data: dict[str, Any] = {
        "id": "test",
        "description": "test voice",
        "language": "en-US",
        "system_voices": {"linux": ["gmw/en-us", "en"], "windows": [], "macos": []},
        "rate_wpm": 160,
        "volume": 0.9,
        "sentence_pause_ms": 200,
    }
    data.update(changes)
    return VoiceProfile.model_validate(data)


def espeak_cli(text: str, voice: str, rate_wpm: int, volume: float) -> npt.NDArray[np.int16]:
    """What the espeak-ng command line says for ``text`` (a reference independent of pyttsx3)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "ref.wav"
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                voice,
                "-s",
                str(rate_wpm),
                "-a",
                str(round(volume * 100)),
                "-w",
                str(out),
                text,
            ],
            check=True,
            capture_output=True,
        )
        data, rate_hz = soundfile.read(str(out), dtype="int16")
    assert rate_hz == 22050
    return np.asarray(data, dtype=np.int16)


def envelope(pcm: npt.NDArray[Any], sample_rate_hz: int = 22050, frame_ms: int = 10) -> Any:
    """RMS per frame, a coarse fingerprint of what was said (robust to espeak's noise seed)."""
    x = np.asarray(pcm, dtype=np.float64)
    if np.issubdtype(np.asarray(pcm).dtype, np.integer):
        x = x / 32768.0
    frame = sample_rate_hz * frame_ms // 1000
    n = len(x) // frame
    return np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1))


def envelope_similarity(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Correlation of two RMS envelopes over their common length (1.0 = same shape)."""
    ea, eb = envelope(a), envelope(b)
    n = min(len(ea), len(eb))
    return float(np.corrcoef(ea[:n], eb[:n])[0, 1])


def reference_speech(text: str, voice: str, rate_wpm: int, volume: float) -> Any:
    """espeak-ng CLI output trimmed exactly like coach trims synthesized speech."""
    return trim_silence(espeak_cli(text, voice, rate_wpm, volume), 22050)


class NoSynthesisBackend:
    """Wraps a real backend but refuses to synthesize: proves a phrase came from the cache."""

    def __init__(self, real: SpeechBackend) -> None:
        self._real = real
        self.calls = 0

    @property
    def engine(self) -> str:
        return self._real.engine

    @property
    def engine_id(self) -> str:
        return self._real.engine_id

    @property
    def default_voice_id(self) -> str | None:
        return self._real.default_voice_id

    def voices(self) -> list[SystemVoice]:
        return self._real.voices()

    def render(
        self, text: str, *, voice_id: str | None, rate_wpm: int, volume: float
    ) -> tuple[npt.NDArray[np.int16], int]:
        self.calls += 1
        raise AssertionError(f"synthesizer called for {text!r}; expected a cache hit")

    def close(self) -> None:
        pass


class LateFileEngine:
    """A fake pyttsx3 engine reproducing the documented race: ``runAndWait`` returns while
    the WAV is still being written (header says 0 frames until the writer closes it); the
    ``finished-utterance`` callback fires afterwards, and the engine prints noise to stdout.
    Only the device boundary is faked; the backend under test is the real one."""

    def __init__(self, pcm: npt.NDArray[np.int16]) -> None:
        self._pcm = pcm
        self._callbacks: dict[str, list[Callable[..., None]]] = {}
        self._pending: tuple[str, str] | None = None
        self.complete_when_run_returned: list[bool] = []
        self.threads: list[threading.Thread] = []

    def getProperty(self, name: str) -> Any:
        return {"voice": "fake/en", "voices": []}[name]

    def setProperty(self, name: str, value: Any) -> None:
        pass

    def connect(self, topic: str, cb: Callable[..., None]) -> dict[str, Any]:
        self._callbacks.setdefault(topic, []).append(cb)
        return {"topic": topic, "cb": cb}

    def disconnect(self, token: dict[str, Any]) -> None:
        self._callbacks[token["topic"]].remove(token["cb"])

    def save_to_file(self, text: str, filename: str) -> None:
        self._pending = (text, filename)

    def runAndWait(self) -> None:
        assert self._pending is not None
        path = Path(self._pending[1])
        partial, returned = threading.Event(), threading.Event()
        thread = threading.Thread(target=self._write_late, args=(path, partial, returned))
        thread.start()
        self.threads.append(thread)
        assert partial.wait(10)
        self.complete_when_run_returned.append(wav_is_complete(path))
        returned.set()

    def _write_late(self, path: Path, partial: threading.Event, returned: threading.Event) -> None:
        # Like a streaming writer: sizes are 0 in the header until the file is closed.
        data = self._pcm.astype("<i2").tobytes()
        with path.open("wb") as out:
            out.write(_wav_header(0))
            out.write(data[:2000])
            out.flush()
            partial.set()
            returned.wait(10)
            out.write(data[2000:])
            out.seek(0)
            out.write(_wav_header(len(data)))
        print(f"Audio saved to {path}")
        for cb in self._callbacks.get("finished-utterance", []):
            cb(completed=True, name=None)


def _wav_header(data_bytes: int) -> bytes:
    """A 44-byte RIFF/WAVE header for 22,050 Hz mono 16-bit PCM."""
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def real_backend() -> Pyttsx3Backend:
    """The real pyttsx3 + espeak-ng backend."""
    return Pyttsx3Backend()
