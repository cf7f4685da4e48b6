"""A small routine and helpers for the rendered-track tests (real espeak-ng, few phrases)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile
from scipy.signal import butter, fftconvolve, sosfiltfilt

from coach.earcons import earcon
from coach.routine import Routine
from coach.speech import Synthesizer
from coach.timeline import Cue, CueKind, Earcon, Leg, Timeline, TimelineOptions, compile_timeline
from coach.voices import DEFAULT_VOICE_ID, load_voice

FAST_PACE = 1.5
"""The fastest pace the timeline allows: shortest track for the same cues."""


def _exercise(exercise_id: str, name: str, *, sides: str, hold_s: float | None) -> dict[str, Any]:
    rep: list[dict[str, Any]] = [{"say": "Straighten the knee.", "hold": hold_s is not None}]
    rep.append({"say": "And relax."})
    return {
        "id": exercise_id,
        "name": name,
        "source": "src",
        "position": "lying_on_back",
        "sides": sides,
        "reps_per_side": 1,
        "sets": 1,
        "hold_s": hold_s,
        "tempo_s": 1.0,
        "rest_between_sides_s": 1.0,
        "setup": ["Lie on your back."],
        "rep": rep,
        "feel": "A gentle stretch.",
        "stop_if": "Stop at sharp pain.",
        "progression": {
            "start_reps": 1,
            "target_reps": 2,
            "over_weeks": 2,
            "note": "Add one.",
        },
    }


def small_routine() -> Routine:
    """Two short exercises (two chapters, a hold, a side switch) with few distinct phrases."""
    return Routine.model_validate(
        {
            "id": "track-test",
            "title": "Track test",
            "description": "A tiny routine for rendering tests.",
            "sources": [{"id": "src", "title": "A source", "site": "example.org"}],
            "safety": {
                "disclaimer": "Not a medical device.",
                "red_flags": "Get help for numbness.",
                "stop_rule": "Stop at sharp pain.",
                "limits": {"max_reps_per_leg_per_day": 10, "max_sessions_per_day": 2},
            },
            "exercises": [
                _exercise("lying", "the lying glide", sides="left", hold_s=1.0),
                _exercise("seated", "the seated glide", sides="both", hold_s=None),
            ],
        }
    )


def synthesizer() -> Synthesizer:
    """The real espeak-ng synthesizer with the default voice (cache in COACH_CACHE_DIR)."""
    return Synthesizer(load_voice(DEFAULT_VOICE_ID))


def small_timeline(synth: Synthesizer) -> Timeline:
    """The small routine compiled with measured speech lengths at the fastest pace."""
    options = TimelineOptions(pace=FAST_PACE, side_first=Leg.LEFT, returning_user=True)
    return compile_timeline(small_routine(), options, speech_ms=synth.speech_ms)


@dataclass(frozen=True)
class Decoded:
    """A rendered file read back."""

    pcm: npt.NDArray[np.float64]
    sample_rate_hz: int

    @property
    def duration_ms(self) -> float:
        return len(self.pcm) * 1000 / self.sample_rate_hz


def decode(path: Path) -> Decoded:
    """Decode any rendered format back to mono float64 (libsndfile reads MP3 too)."""
    data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    return Decoded(data[:, 0], int(rate))


def cues_of(timeline: Timeline, kind: CueKind) -> list[Cue]:
    """The cues of one kind, in order."""
    return [cue for cue in timeline.cues if cue.kind is kind]


def earcon_onsets_ms(
    audio: Decoded, kind: Earcon, expected_ms: list[int], *, search_ms: int = 200
) -> list[float]:
    """Where each ``kind`` earcon starts in the audio, found by matched filtering.

    For each expected offset, the known earcon waveform is cross-correlated with
    the audio within +-``search_ms`` of it; the lag with the highest normalised
    correlation is the onset. Returns the found onsets in ms.
    """
    rate = audio.sample_rate_hz
    template = earcon(kind, rate).astype(np.float64)
    template_energy = float(np.sqrt(np.dot(template, template)))
    found: list[float] = []
    for at_ms in expected_ms:
        centre = at_ms * rate // 1000
        lo = max(0, centre - search_ms * rate // 1000)
        hi = min(len(audio.pcm), centre + search_ms * rate // 1000 + len(template))
        window = audio.pcm[lo:hi]
        corr = fftconvolve(window, template[::-1], mode="valid")
        energy = np.sqrt(
            np.maximum(fftconvolve(window * window, np.ones(len(template)), mode="valid"), 0.0)
        )
        score = corr / (template_energy * np.maximum(energy, 1e-12))
        best = int(np.argmax(score))
        found.append((lo + best) * 1000 / rate)
    return found


def speech_onsets_ms(
    audio: Decoded, expected_ms: list[int], *, search_ms: int = 300
) -> list[float]:
    """Where sound starts after silence near each expected offset (energy envelope).

    The audio is high-passed at 100 Hz (keeping the hiss of an initial 's'), its
    2 ms RMS envelope computed, and an onset is an upward crossing of -50 dB
    relative to the loudest envelope value. For each expected offset, the
    crossing within +-``search_ms`` nearest to it is returned (NaN if none).
    """
    rate = audio.sample_rate_hz
    sos = butter(2, 100, btype="highpass", fs=rate, output="sos")
    band = sosfiltfilt(sos, audio.pcm)
    hop = rate // 500  # 2 ms
    frames = len(band) // hop
    envelope = np.sqrt((band[: frames * hop] ** 2).reshape(frames, hop).mean(axis=1))
    loud = envelope >= float(envelope.max()) * 10 ** (-50 / 20)
    before = np.concatenate(([False], loud[:-1]))  # the track starts from silence
    crossings_ms = np.flatnonzero(loud & ~before) * hop * 1000 / rate
    onsets: list[float] = []
    for at_ms in expected_ms:
        near = crossings_ms[np.abs(crossings_ms - at_ms) <= search_ms]
        onsets.append(float(near[np.argmin(np.abs(near - at_ms))]) if near.size else math.nan)
    return onsets
