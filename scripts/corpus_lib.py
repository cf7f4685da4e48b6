"""Shared, coach-independent code for the listening corpus builder and its evaluation.

Conventions (every corpus, synthetic or real):

- Audio is 16 kHz mono; streams are written as int16 WAV, handled as float32 in [-1, 1].
- **Active part** of an utterance: its 10 ms frames whose mean square is within
  ``ACTIVE_RANGE_DB`` (35 dB) of the loudest frame and ``FLOOR_MARGIN_DB`` (12 dB) above
  the clip's own noise floor (its 10th-percentile frame; zero for synthetic speech).
  ``onset_ms`` / ``word_end_ms`` are the start of the first and the end of the last
  active frame, in the stream's clock.
- **Active speech level**: the mean square over the active frames (a simplified ITU-T
  P.56 level). Synthetic utterances are normalised to ``SPEECH_LEVEL_DBFS`` of active level.
- **SNR** = active speech level of the utterance / mean square of the noise over the
  whole stream (noise is stationary or, for babble, made continuous), so an utterance
  mixed "at 0 dB" has exactly as much power while speaking as the noise has everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile
from scipy import signal

SAMPLE_RATE_HZ = 16_000
"""Every corpus stream is 16 kHz mono."""
FRAME_SAMPLES = 160
"""10 ms frames for the active-part measure."""
FRAME_MS = 10
ACTIVE_RANGE_DB = 35.0
"""Frames within this many dB of an utterance's loudest frame count as active ..."""
FLOOR_MARGIN_DB = 12.0
"""... if they are also this far above the clip's noise floor (10th percentile frame)."""
SPEECH_LEVEL_DBFS = -26.0
"""Active speech level synthetic utterances are normalised to (dB re full scale, mean sq)."""
ROOM_NOISE_DBFS = -65.0
"""Level of the quiet room noise between utterances in "clean" streams."""

Audio = npt.NDArray[np.float32]


# --------------------------------------------------------------------------- audio I/O


def read_wav(path: Path) -> tuple[Audio, int]:
    """A mono WAV as float32 in [-1, 1] and its rate (first channel if stereo)."""
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data[:, 0]), int(rate)


def write_wav(path: Path, pcm: Audio, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Write float32 PCM as 16-bit mono WAV (clipped to full scale)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), to_int16(pcm), sample_rate_hz, subtype="PCM_16")


def to_int16(pcm: Audio) -> npt.NDArray[np.int16]:
    """Float [-1, 1] to int16, clipped."""
    return np.asarray(np.clip(np.round(pcm * 32767.0), -32768, 32767), dtype=np.int16)


def read_wav_int16(path: Path) -> npt.NDArray[np.int16]:
    """A 16 kHz mono WAV as int16 (what the listener is fed)."""
    data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    if rate != SAMPLE_RATE_HZ:
        raise ValueError(f"{path}: {rate} Hz, expected {SAMPLE_RATE_HZ}")
    return np.ascontiguousarray(data[:, 0])


def resample(pcm: Audio, from_hz: int, to_hz: int = SAMPLE_RATE_HZ) -> Audio:
    """Polyphase resampling (exact rational ratio)."""
    if from_hz == to_hz:
        return np.asarray(pcm, np.float32)
    g = math.gcd(from_hz, to_hz)
    out = signal.resample_poly(np.asarray(pcm, np.float64), to_hz // g, from_hz // g)
    return np.asarray(out, np.float32)


# --------------------------------------------------------------------------- synthesis


@dataclass(frozen=True)
class VoiceVariant:
    """One way espeak-ng says a phrase: voice (with optional +variant), rate, pitch."""

    voice: str
    rate_wpm: int
    pitch: int

    def key(self, text: str) -> str:
        """A stable file-name key for ``text`` in this variant."""
        raw = f"{self.voice}|{self.rate_wpm}|{self.pitch}|{text}".encode()
        return hashlib.sha1(raw).hexdigest()[:16]


def espeak(text: str, variant: VoiceVariant) -> Audio:
    """``text`` spoken by espeak-ng (``-w``), resampled to 16 kHz float32."""
    with tempfile.TemporaryDirectory(prefix="coach-espeak-") as tmp:
        out = Path(tmp) / "say.wav"
        cmd = [
            "espeak-ng",
            "-v", variant.voice,
            "-s", str(variant.rate_wpm),
            "-p", str(variant.pitch),
            "-w", str(out),
            "--", text,
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        pcm, rate = read_wav(out)
    return resample(pcm, rate)


def espeak_cached(text: str, variant: VoiceVariant, cache_dir: Path) -> Audio:
    """``espeak`` with the 16 kHz result kept in ``cache_dir`` (re-runs are quick)."""
    path = cache_dir / f"{variant.key(text)}.wav"
    if path.is_file():
        return read_wav(path)[0]
    pcm = espeak(text, variant)
    tmp = path.with_suffix(".tmp.wav")
    write_wav(tmp, pcm)
    tmp.replace(path)
    return read_wav(path)[0]  # the int16-rounded copy, identical on every run


# --------------------------------------------------------------------------- levels


def frame_power(pcm: Audio) -> npt.NDArray[np.float64]:
    """Mean square per whole 10 ms frame."""
    n = len(pcm) // FRAME_SAMPLES
    x = np.asarray(pcm[: n * FRAME_SAMPLES], np.float64).reshape(n, FRAME_SAMPLES)
    return np.asarray((x * x).mean(axis=1), np.float64)


def active_frames(pcm: Audio, range_db: float = ACTIVE_RANGE_DB) -> npt.NDArray[np.bool_]:
    """Which 10 ms frames belong to the active part (within ``range_db`` of the loudest)."""
    power = frame_power(pcm)
    if len(power) == 0 or power.max() <= 0.0:
        return np.zeros(len(power), bool)
    # Recorded clips carry their own background: frames must also clear the clip's
    # noise floor (10th percentile frame) by FLOOR_MARGIN_DB. Synthetic clips have a
    # digital-silence floor, so for them only the range from the peak matters.
    floor = float(np.percentile(power, 10)) * 10 ** (FLOOR_MARGIN_DB / 10)
    threshold = max(float(power.max()) * 10 ** (-range_db / 10), floor)
    return np.asarray(power >= threshold, bool)


def active_span_ms(pcm: Audio, range_db: float = ACTIVE_RANGE_DB) -> tuple[int, int]:
    """(start, end) of the active part in ms from the start of ``pcm``."""
    frames = np.flatnonzero(active_frames(pcm, range_db))
    if len(frames) == 0:
        return 0, 0
    return int(frames[0]) * FRAME_MS, (int(frames[-1]) + 1) * FRAME_MS


def active_power(pcm: Audio, range_db: float = ACTIVE_RANGE_DB) -> float:
    """Mean square over the active frames (the active speech level, linear)."""
    mask = active_frames(pcm, range_db)
    if not mask.any():
        return 0.0
    return float(frame_power(pcm)[mask].mean())


def power_db(mean_square: float) -> float:
    """Mean square as dB re full scale."""
    return 10 * math.log10(max(mean_square, 1e-20))


def normalize_active(pcm: Audio, level_dbfs: float = SPEECH_LEVEL_DBFS) -> Audio:
    """Scale so the active speech level is ``level_dbfs``."""
    power = active_power(pcm)
    if power <= 0.0:
        return np.asarray(pcm, np.float32)
    gain = math.sqrt(10 ** (level_dbfs / 10) / power)
    return np.asarray(pcm * gain, np.float32)


def scale_to_power(pcm: Audio, level_dbfs: float) -> Audio:
    """Scale so the mean square over the whole signal is ``level_dbfs``."""
    power = float(np.mean(np.asarray(pcm, np.float64) ** 2)) if len(pcm) else 0.0
    if power <= 0.0:
        return np.asarray(pcm, np.float32)
    return np.asarray(pcm * math.sqrt(10 ** (level_dbfs / 10) / power), np.float32)


def fade(pcm: Audio, fade_ms: int = 5) -> Audio:
    """Short raised-cosine fades at both ends (no clicks where a clip is pasted)."""
    n = min(len(pcm) // 2, fade_ms * SAMPLE_RATE_HZ // 1000)
    out = np.array(pcm, np.float32)
    if n > 0:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))).astype(np.float32)
        out[:n] *= ramp
        out[-n:] *= ramp[::-1]
    return out


# --------------------------------------------------------------------------- noise


def white_noise(n: int, rng: np.random.Generator) -> Audio:
    """Gaussian white noise, unit variance."""
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> Audio:
    """1/f noise (spectrum shaped in the frequency domain), unit variance."""
    if n == 0:
        return np.zeros(0, np.float32)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE_HZ)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    pink = np.fft.irfft(spectrum, n)
    return np.asarray(pink / (pink.std() or 1.0), np.float32)


def room_noise(n: int, rng: np.random.Generator, level_dbfs: float = ROOM_NOISE_DBFS) -> Audio:
    """A quiet room: pink noise with the hum of a fan, at ``level_dbfs`` mean square."""
    t = np.arange(n) / SAMPLE_RATE_HZ
    hum = 0.3 * np.sin(2 * np.pi * 100 * t + rng.uniform(0, 2 * np.pi))
    return scale_to_power(np.asarray(pink_noise(n, rng) + hum, np.float32), level_dbfs)


def babble_noise(n: int, talkers: Sequence[Audio], rng: np.random.Generator) -> Audio:
    """Several talkers at once: each a random loop of ``talkers`` clips, equal level."""
    if not talkers:
        raise ValueError("babble needs speech clips")
    out = np.zeros(n, np.float64)
    for _ in range(6):
        voice = np.zeros(0, np.float32)
        while len(voice) < n:
            clip = talkers[int(rng.integers(len(talkers)))]
            voice = np.concatenate([voice, normalize_active(clip)])
        start = int(rng.integers(0, max(1, len(voice) - n + 1)))
        out += voice[start : start + n]
    return np.asarray(out / (out.std() or 1.0), np.float32)


def noise_for_snr(noise: Audio, snr_db: float, level_dbfs: float = SPEECH_LEVEL_DBFS) -> Audio:
    """``noise`` scaled so speech at ``level_dbfs`` active level is ``snr_db`` above it."""
    return scale_to_power(noise, level_dbfs - snr_db)


# --------------------------------------------------------------------------- room echo


def room_impulse_response(
    rng: np.random.Generator,
    delay_ms: float = 50.0,
    rt60_ms: float = 300.0,
    length_ms: float = 400.0,
    direct_gain: float = 0.6,
    tail_gain: float = 0.25,
) -> Audio:
    """A synthetic room: the direct path after ``delay_ms`` plus an exponentially decaying
    noise tail (energy falls 60 dB in ``rt60_ms``)."""
    n = int(length_ms * SAMPLE_RATE_HZ / 1000)
    d = int(delay_ms * SAMPLE_RATE_HZ / 1000)
    h = np.zeros(n + d, np.float64)
    h[d] = direct_gain
    t = np.arange(n) / SAMPLE_RATE_HZ
    decay = np.exp(-6.91 * t / (rt60_ms / 1000))  # 6.91 = ln(1000): 60 dB in amplitude^2
    tail = rng.standard_normal(n) * decay
    tail[: int(0.002 * SAMPLE_RATE_HZ)] = 0.0  # first reflections arrive a little later
    h[d:] += tail_gain * tail / np.sqrt(np.sum(tail**2))
    return np.asarray(h, np.float32)


def apply_echo(pcm: Audio, impulse: Audio) -> Audio:
    """``pcm`` as heard by a microphone in the room (same length)."""
    out = signal.fftconvolve(np.asarray(pcm, np.float64), np.asarray(impulse, np.float64))
    return np.asarray(out[: len(pcm)], np.float32)


# --------------------------------------------------------------------------- streams


@dataclass
class Utterance:
    """One labelled utterance to place in a stream (``pcm`` is 16 kHz float32)."""

    pcm: Audio
    label: dict[str, Any]
    """Free-form label fields copied into the manifest (command, phrase, voice...)."""


@dataclass
class Placed:
    """Where an utterance landed in a stream."""

    offset_ms: int
    onset_ms: int
    word_end_ms: int
    label: dict[str, Any] = field(default_factory=dict)

    def row(self, file: str) -> dict[str, Any]:
        """The manifest row."""
        return {"file": file, **self.label, "onset_ms": self.onset_ms,
                "word_end_ms": self.word_end_ms, "offset_ms": self.offset_ms}


def plan_streams(
    durations_ms: Sequence[int], target_ms: int, gap_ms: tuple[int, int], rng: np.random.Generator
) -> list[list[tuple[int, int]]]:
    """Group utterances (in order) into streams of about ``target_ms``.

    Returns, per stream, (utterance index, offset_ms) pairs; gaps between utterances are
    drawn uniformly from ``gap_ms`` (also before the first one).
    """
    streams: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    t = 0
    for i, dur in enumerate(durations_ms):
        t += int(rng.integers(gap_ms[0], gap_ms[1] + 1))
        t = t // FRAME_MS * FRAME_MS  # frame-aligned offsets keep labels exact
        current.append((i, t))
        t += dur
        if t >= target_ms:
            streams.append(current)
            current, t = [], 0
    if current:
        streams.append(current)
    return streams


def build_stream(
    utterances: Sequence[Utterance],
    layout: Sequence[tuple[int, int]],
    background: Callable[[int], Audio],
    tail_ms: int = 2000,
) -> tuple[Audio, list[Placed]]:
    """Paste utterances at their offsets over ``background(n_samples)``.

    Onset and word end are the utterance's active span shifted by its offset. The
    stream ends ``tail_ms`` after the last utterance so the engine can finish it.
    """
    end_ms = max((off + len(utterances[i].pcm) * 1000 // SAMPLE_RATE_HZ for i, off in layout),
                 default=0) + tail_ms
    n = end_ms * SAMPLE_RATE_HZ // 1000
    stream = np.array(background(n), np.float32)
    placed: list[Placed] = []
    for i, offset_ms in layout:
        u = utterances[i]
        start = offset_ms * SAMPLE_RATE_HZ // 1000
        stream[start : start + len(u.pcm)] += u.pcm
        a, b = active_span_ms(u.pcm)
        placed.append(Placed(offset_ms, offset_ms + a, offset_ms + b, dict(u.label)))
    return stream, placed


# --------------------------------------------------------------------------- manifests


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


# --------------------------------------------------------------------------- scoring


MAX_LATENCY_MS = 3000
"""An event more than this long after an utterance's word end is not credited to it."""


@dataclass(frozen=True)
class HeardEvent:
    """A command event as the evaluation sees it (times in the stream's clock)."""

    command: str
    phrase: str
    confidence: float
    word_end_ms: int
    detected_ms: int


@dataclass
class Outcome:
    """What the listener did with one labelled utterance."""

    label: dict[str, Any]
    events: list[HeardEvent] = field(default_factory=list)

    @property
    def command(self) -> str | None:
        """The expected command (None for negative speech)."""
        value = self.label.get("command")
        return str(value) if value else None

    @property
    def detected(self) -> bool:
        """The expected command was heard."""
        return self.command is not None and any(e.command == self.command for e in self.events)

    @property
    def false_events(self) -> list[HeardEvent]:
        """Events for any other command (all of them, for negative speech)."""
        return [e for e in self.events if e.command != self.command]

    @property
    def latency_ms(self) -> int | None:
        """Word end (label) to the first right event."""
        for e in self.events:
            if e.command == self.command:
                return e.detected_ms - int(self.label["word_end_ms"])
        return None


def assign_events(
    labels: Sequence[dict[str, Any]], events: Sequence[HeardEvent]
) -> tuple[list[Outcome], list[HeardEvent]]:
    """Credit each event to the utterance it follows; the rest are stray events.

    An event belongs to the last utterance whose onset is at or before its detection
    time, if it came at most ``MAX_LATENCY_MS`` after that utterance's word end.
    """
    order = sorted(range(len(labels)), key=lambda i: int(labels[i]["onset_ms"]))
    outcomes = [Outcome(dict(labels[i])) for i in order]
    onsets = [int(o.label["onset_ms"]) for o in outcomes]
    stray: list[HeardEvent] = []
    for event in sorted(events, key=lambda e: e.detected_ms):
        idx = int(np.searchsorted(onsets, event.detected_ms, side="right")) - 1
        if idx >= 0 and event.detected_ms - int(outcomes[idx].label["word_end_ms"]) \
                <= MAX_LATENCY_MS:
            outcomes[idx].events.append(event)
        else:
            stray.append(event)
    return outcomes, stray


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear), None when empty."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, np.float64), q))


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (for JSON)."""
    return asdict(obj)


# --------------------------------------------------------------------------- baselines


HEAD_TREE = Path("/tmp/coach-head-tree")
"""Where ``export_head_tree`` puts the committed ``coach`` package (the previous engines)."""


def export_head_tree(root: Path, folder: Path = HEAD_TREE) -> Path:
    """The ``coach`` package as committed at HEAD, unpacked under ``folder`` (read-only git):
    put ``folder`` first on ``sys.path`` to run the committed engines next to the new ones."""
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    target = folder / commit[:12]
    if not (target / "coach" / "__init__.py").is_file():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(root), "archive", "HEAD", "coach"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target
