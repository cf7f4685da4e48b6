"""Log-mel features of short utterances (numpy only), shared by the spotter and its trainer."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

SAMPLE_RATE_HZ = 16_000
"""Features are computed on 16 kHz mono audio."""
HOP_SAMPLES = 160
"""10 ms between frames."""
WINDOW_SAMPLES = 400
"""25 ms analysis window."""
FFT_SIZE = 512
N_MELS = 32
"""Mel bands from ``MEL_LOW_HZ`` to ``MEL_HIGH_HZ``."""
MEL_LOW_HZ = 100.0
MEL_HIGH_HZ = 7000.0
ACTIVE_RANGE_DB = 35.0
"""Frames within this range of the loudest frame belong to the word (trimming)."""
SHAPE_FRAMES = 24
"""Every utterance is stretched or squeezed to this many frames before classification."""

Floats = NDArray[np.float32]


def _hz_to_mel(hz: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(2595.0 * np.log10(1.0 + hz / 700.0), np.float64)


@lru_cache(maxsize=1)
def mel_filterbank() -> NDArray[np.float64]:
    """Triangular mel filters, shape (FFT_SIZE // 2 + 1, N_MELS), contiguous."""
    bins = FFT_SIZE // 2 + 1
    freqs = np.linspace(0.0, SAMPLE_RATE_HZ / 2, bins)
    edges_mel = np.linspace(_hz_to_mel(np.array(MEL_LOW_HZ)), _hz_to_mel(np.array(MEL_HIGH_HZ)),
                            N_MELS + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    bank = np.zeros((N_MELS, bins), np.float64)
    for i in range(N_MELS):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rising = (freqs - lo) / max(mid - lo, 1e-9)
        falling = (hi - freqs) / max(hi - mid, 1e-9)
        bank[i] = np.clip(np.minimum(rising, falling), 0.0, None)
    return np.ascontiguousarray(bank.T)


def log_mel(pcm: NDArray[np.floating] | NDArray[np.integer]) -> Floats:
    """Natural-log mel energies, shape (frames, N_MELS); int16 or float input."""
    x = np.asarray(pcm, np.float64)
    if np.issubdtype(np.asarray(pcm).dtype, np.integer):
        x = x / 32768.0
    if len(x) < WINDOW_SAMPLES:
        x = np.pad(x, (0, WINDOW_SAMPLES - len(x)))
    # Pre-emphasis flattens the speech spectrum so high bands (consonants) count.
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1])
    n = 1 + (len(x) - WINDOW_SAMPLES) // HOP_SAMPLES
    idx = np.arange(WINDOW_SAMPLES)[None, :] + HOP_SAMPLES * np.arange(n)[:, None]
    frames = x[idx] * np.hanning(WINDOW_SAMPLES)
    spectrum = np.fft.rfft(frames, FFT_SIZE)
    power = spectrum.real**2 + spectrum.imag**2
    # float64 np.dot: float32 matmul of this shape hits a slow multi-threaded BLAS path.
    mel = np.dot(power, mel_filterbank())
    return np.asarray(np.log(mel + 1e-8), np.float32)


def active_frames(mel: Floats, range_db: float = ACTIVE_RANGE_DB) -> tuple[int, int]:
    """First and one-past-last frame of the word: the loud part, ignoring edges of silence."""
    if len(mel) == 0:
        return 0, 0
    energy = np.log(np.exp(mel).sum(axis=1) + 1e-8)
    floor = float(np.percentile(energy, 10))
    # Natural-log units: dB / (10 log10 e).
    threshold = max(float(energy.max()) - range_db / 4.343, floor + 6.0 / 4.343)
    voiced = np.flatnonzero(energy >= threshold)
    if len(voiced) == 0:
        return 0, len(mel)
    return int(voiced[0]), int(voiced[-1]) + 1


@lru_cache(maxsize=4)
def dct_matrix(n_cepstra: int) -> NDArray[np.float64]:
    """Orthonormal DCT-II from N_MELS log energies to ``n_cepstra`` cepstra (c1 onwards)."""
    k = np.arange(1, n_cepstra + 1)[None, :]
    n = np.arange(N_MELS)[:, None]
    return np.asarray(np.cos(np.pi * k * (n + 0.5) / N_MELS) * np.sqrt(2.0 / N_MELS), np.float64)


def shape_vector(mel: Floats, n_cepstra: int = 0, span: tuple[int, int] | None = None
                 ) -> Floats:
    """A fixed-size description of one word: normalised spectral shape + log duration.

    The word's frames are mean-normalised per band (removes microphone colour and level),
    optionally smoothed to ``n_cepstra`` cepstral coefficients (drops pitch and
    voice detail, keeps the vocal-tract shape), resampled to ``SHAPE_FRAMES`` frames, and
    followed by the log duration in seconds. ``span`` (first, one-past-last frame) is the
    word as the voice activity detector cut it; it is trimmed further to its loud part.
    """
    start, end = 0, len(mel)
    if span is not None:
        start, end = max(0, span[0]), min(len(mel), max(span[1], span[0] + 1))
    # Inside the span, keep the part clearly above the span's own quietest frames: a
    # recording's background noise around the word is not part of the word.
    first, last = active_frames(mel[start:end])
    start, end = start + first, start + last
    word = mel[start:end] if end > start else mel
    if len(word) == 0:
        word = np.zeros((1, N_MELS), np.float32)
    centred = word - word.mean(axis=0, keepdims=True)
    if n_cepstra:
        centred = np.dot(centred, dct_matrix(n_cepstra))
    # Per-utterance level: scale by the overall spread so loud and soft speakers match.
    centred = centred / (float(centred.std()) + 1e-3)
    src = np.linspace(0.0, 1.0, len(centred))
    dst = np.linspace(0.0, 1.0, SHAPE_FRAMES)
    stretched = np.stack(
        [np.interp(dst, src, centred[:, b]) for b in range(centred.shape[1])], axis=1)
    duration_s = len(word) * HOP_SAMPLES / SAMPLE_RATE_HZ
    return np.append(stretched.reshape(-1), np.log(duration_s + 1e-3)).astype(np.float32)


def dtw_distance(a: Floats, b: Floats) -> float:
    """Length-normalised dynamic time warping distance between two feature sequences.

    Frames are taken two at a time (20 ms steps): words differ over tens of ms, and this
    quarters the cost of the pure-Python recursion.
    """
    a, b = a[::2], b[::2]
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        row = cost[i - 1]
        prev = acc[i - 1]
        cur = acc[i]
        for j in range(1, m + 1):
            cur[j] = row[j - 1] + min(prev[j], prev[j - 1], cur[j - 1])
    return float(acc[n, m] / (n + m))


def warp_bands(mel: Floats, factor: float) -> Floats:
    """Stretch the spectrum along the band axis (a vocal tract length change), for training."""
    bands = np.arange(N_MELS, dtype=np.float64)
    source = np.clip(bands / factor, 0, N_MELS - 1)
    return np.stack([np.interp(source, bands, row) for row in mel]).astype(np.float32)


def template(mel: Floats) -> Floats:
    """The word's frames, mean-normalised per band: what enrollment stores and DTW compares."""
    start, end = active_frames(mel)
    word = mel[start:end] if end > start else mel
    return np.asarray(word - word.mean(axis=0, keepdims=True), np.float32)
