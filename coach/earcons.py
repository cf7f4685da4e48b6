"""Earcons: short, gentle tones generated in code (no binary assets).

Each earcon is a few sine notes (400–2000 Hz, the band a small phone speaker plays
well) with raised-cosine attacks and releases, so nothing clicks, peaking at -12 dBFS
so they sit under the voice. Kinds differ by pitch contour, not only by pitch:

- hold start: rising two-note (C5 → G5), "begin"
- hold end / relax: falling two-note (A5 → D5), longer and softer, "let go"
- rep tick: one short high blip
- side switch: three notes up and back (E5 → A5 → E5), "swap"
- exercise start: a struck chime (D5 + A5 + D6) ringing out
- session end: a suspended chord (C5 F5 G5) resolving to C major (C5 E5 G5)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from coach.timeline import Earcon

EARCON_MS: dict[Earcon, int] = {
    Earcon.HOLD_START: 250,
    Earcon.HOLD_END: 300,
    Earcon.REP_TICK: 80,
    Earcon.SIDE_SWITCH: 450,
    Earcon.EXERCISE_START: 600,
    Earcon.SESSION_END: 1200,
}
"""Length of each earcon in ms; the timeline uses these as TONE cue durations."""

EARCON_PEAK_DBFS = -12.0
"""Peak level of every earcon."""

EDGE_FADE_MS = 4
"""Raised-cosine fade on the whole earcon's first and last ms: edges land exactly on 0."""


@dataclass(frozen=True, slots=True)
class _Note:
    """One note of an earcon: partials (Hz, relative amplitude) over a time span."""

    start_ms: float
    length_ms: float
    partials: tuple[tuple[float, float], ...]
    attack_ms: float = 15.0
    release_ms: float = 40.0
    decay_ms: float | None = None
    """Exponential decay time constant (struck sounds); None holds the level."""
    level: float = 1.0


# Equal-tempered pitches (Hz).
_C5, _D5, _E5, _F5, _G5 = 523.25, 587.33, 659.26, 698.46, 783.99
_A5, _C6, _D6 = 880.0, 1046.5, 1174.66


def _tone(freq_hz: float) -> tuple[tuple[float, float], ...]:
    """A soft tone: the fundamental plus a quiet octave (within 2 kHz) for small speakers."""
    if freq_hz * 2 <= 2000:
        return ((freq_hz, 1.0), (freq_hz * 2, 0.18))
    return ((freq_hz, 1.0),)


_SCORES: dict[Earcon, tuple[_Note, ...]] = {
    Earcon.HOLD_START: (
        _Note(0, 125, _tone(_C5), attack_ms=12, release_ms=35),
        _Note(105, 145, _tone(_G5), attack_ms=15, release_ms=70),
    ),
    Earcon.HOLD_END: (
        _Note(0, 140, _tone(_A5), attack_ms=15, release_ms=40),
        _Note(120, 180, _tone(_D5), attack_ms=20, release_ms=110, level=0.85),
    ),
    Earcon.REP_TICK: (_Note(0, 80, ((_D6, 1.0),), attack_ms=6, release_ms=40, decay_ms=30),),
    Earcon.SIDE_SWITCH: (
        _Note(0, 150, _tone(_E5), attack_ms=12, release_ms=35),
        _Note(140, 150, _tone(_A5), attack_ms=12, release_ms=35),
        _Note(290, 160, _tone(_E5), attack_ms=12, release_ms=80),
    ),
    Earcon.EXERCISE_START: (
        _Note(
            0,
            600,
            ((_D5, 1.0), (_A5, 0.55), (_D6, 0.35), (1760.0, 0.12)),
            attack_ms=8,
            release_ms=150,
            decay_ms=220,
        ),
    ),
    Earcon.SESSION_END: (
        _Note(0, 560, ((_C5, 0.8), (_F5, 0.7), (_G5, 0.6)), attack_ms=60, release_ms=160),
        _Note(
            460,
            740,
            ((_C5, 0.8), (_E5, 0.75), (_G5, 0.6), (_C6, 0.35)),
            attack_ms=120,
            release_ms=420,
        ),
    ),
}


def earcon_samples(kind: Earcon, sample_rate_hz: int) -> int:
    """Number of samples of ``kind`` at ``sample_rate_hz``: EARCON_MS rounded half up."""
    return (EARCON_MS[kind] * sample_rate_hz + 500) // 1000


def _raised_cosine(n_total: int, attack_n: int, release_n: int) -> npt.NDArray[np.float64]:
    """Envelope rising 0→1 over attack_n, holding, falling 1→0 over release_n (sum ≤ n)."""
    env = np.ones(n_total)
    attack_n = min(attack_n, n_total)
    release_n = min(release_n, n_total - attack_n)
    if attack_n > 0:
        env[:attack_n] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack_n) / attack_n)
    if release_n > 0:
        env[n_total - release_n :] = 0.5 + 0.5 * np.cos(
            np.pi * (np.arange(release_n) + 1) / release_n
        )
    return env


def _render_note(note: _Note, sample_rate_hz: int, n_total: int) -> npt.NDArray[np.float64]:
    out = np.zeros(n_total)
    start = round(note.start_ms * sample_rate_hz / 1000)
    length = min(round(note.length_ms * sample_rate_hz / 1000), n_total - start)
    if length <= 0:
        return out
    t = np.arange(length) / sample_rate_hz
    wave = np.zeros(length)
    for freq_hz, amp in note.partials:
        wave += amp * np.sin(2 * np.pi * freq_hz * t)
    env = _raised_cosine(
        length,
        round(note.attack_ms * sample_rate_hz / 1000),
        round(note.release_ms * sample_rate_hz / 1000),
    )
    if note.decay_ms is not None:
        env *= np.exp(-t * 1000 / note.decay_ms)
    out[start : start + length] = note.level * wave * env
    return out


def earcon(kind: Earcon, sample_rate_hz: int) -> npt.NDArray[np.float32]:
    """Earcon ``kind`` as float32 mono PCM, EARCON_MS[kind] long (see earcon_samples)."""
    if sample_rate_hz < 8000:
        raise ValueError(f"sample rate too low for earcons: {sample_rate_hz} Hz")
    n_total = earcon_samples(kind, sample_rate_hz)
    signal = np.zeros(n_total)
    for note in _SCORES[kind]:
        signal += _render_note(note, sample_rate_hz, n_total)
    fade_n = EDGE_FADE_MS * sample_rate_hz // 1000
    signal *= _raised_cosine(n_total, fade_n, fade_n)
    peak = float(np.max(np.abs(signal)))
    if peak > 0:
        signal *= 10 ** (EARCON_PEAK_DBFS / 20) / peak
    return signal.astype(np.float32)
