"""Speech synthesis: text in, PCM out (pyttsx3 as a synthesizer, never a player), cached.

A :class:`Phrase` holds the spoken sentence trimmed of the synthesizer's leading and
trailing silence (a few ms of margin are kept so soft consonants are not clipped),
followed by exactly ``sentence_pause_ms`` of silence from the voice profile. Its
``duration_ms`` is therefore "sentence + the profile's pause", and that is what
:meth:`Synthesizer.speech_ms` reports to the timeline.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.metadata
import io
import logging
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from coach.errors import CoachError
from coach.phrase_cache import PhraseCache, phrase_key
from coach.voices import ResolvedVoice, SystemVoice, VoiceProfile, resolve_system_voice

SAMPLE_RATE_HZ = 22050
"""Native output rate of espeak-ng through pyttsx3; every Phrase is at this rate."""

TRIM_THRESHOLD = 64
"""|sample| (int16) above which audio counts as speech when trimming (about -54 dBFS)."""
TRIM_LEAD_MS = 5
"""Silence kept before the first sample above the threshold."""
TRIM_TAIL_MS = 20
"""Silence kept after the last sample above the threshold (lets the decay ring out)."""

MEMO_BYTES = 64 * 1024 * 1024
"""Memory for recently used phrases per synthesizer (about 12 minutes of speech), so
measuring a sentence and then rendering it reads the disk cache once."""

_log = logging.getLogger(__name__)

# libespeak-ng and pyttsx3's engine are one per process (pyttsx3.init() hands back the
# same engine), so utterances from every backend in the process take turns.
_ENGINE_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True, eq=False)
class Phrase:
    """A synthesized sentence: float32 mono PCM in [-1, 1] at ``sample_rate_hz``."""

    text: str
    pcm: npt.NDArray[np.float32]
    sample_rate_hz: int

    @property
    def duration_ms(self) -> int:
        """Length in whole ms (speech plus the profile's sentence pause)."""
        return round(len(self.pcm) * 1000 / self.sample_rate_hz)


@dataclass(slots=True)
class SynthesisStats:
    """Where phrases came from: disk cache hits, synthesizer misses, time spent."""

    hits: int = 0
    """Phrases read from the on-disk cache."""
    misses: int = 0
    """Phrases the synthesizer had to produce."""
    synth_s: float = 0.0
    """Wall seconds spent in the synthesizer (misses only)."""
    memory_hits: int = 0
    """Repeat requests answered from memory (neither disk nor synthesizer)."""


class SpeechBackend(Protocol):
    """Something that turns text into int16 PCM with a given system voice."""

    @property
    def engine(self) -> str:
        """Driver name, e.g. ``espeak``; selects the profile's platform voice list."""
        ...

    @property
    def engine_id(self) -> str:
        """Engine name and versions; part of every cache key."""
        ...

    @property
    def default_voice_id(self) -> str | None:
        """The engine's own default voice."""
        ...

    def voices(self) -> list[SystemVoice]:
        """The system voices this engine offers."""
        ...

    def render(
        self, text: str, *, voice_id: str | None, rate_wpm: int, volume: float
    ) -> tuple[npt.NDArray[np.int16], int]:
        """Mono int16 PCM of ``text`` and its sample rate in Hz."""
        ...

    def close(self) -> None:
        """Release what the backend holds."""
        ...


_INSTALL_HINTS = {
    "espeak": "install espeak-ng (Debian/Ubuntu: sudo apt install espeak-ng libespeak-ng1; "
    "macOS: brew install espeak-ng)",
    "sapi5": "install pywin32 (pip install pywin32); SAPI5 ships with Windows",
    "nsss": "install pyobjc (pip install pyobjc)",
    "avspeech": "install pyobjc (pip install pyobjc)",
}


def _default_driver() -> str:
    if sys.platform == "win32":
        return "sapi5"
    if sys.platform == "darwin":
        return "nsss"
    return "espeak"


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Swallow everything written to stdout, by Python or by C code, inside the block.

    pyttsx3 prints "Audio saved to ..." for every file and native engines may printf;
    coach's stdout belongs to its own output (``--json``), so both fd 1 and
    ``sys.stdout`` are pointed away for the duration.
    """
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    saved_fd: int | None = None
    devnull_fd: int | None = None
    try:
        saved_fd = os.dup(1)
        devnull_fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull_fd, 1)
    except OSError:
        # No fd 1 (e.g. pythonw on Windows): nothing at the OS level to silence.
        saved_fd = None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        if saved_fd is not None:
            _flush_c_stdio()
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
        if devnull_fd is not None:
            os.close(devnull_fd)


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(None)


def _flush_c_stdio() -> None:
    """Flush C stdio buffers so text printed by native code lands in /dev/null, not later."""
    if sys.platform == "win32":
        return
    with contextlib.suppress(Exception):
        _libc().fflush(None)


def wav_is_complete(path: Path) -> bool:
    """True when the RIFF/WAVE file's header agrees with its size (the writer has closed it)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as wav:
            head = wav.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return False
            riff_size = struct.unpack("<I", head[4:8])[0]
            if riff_size + 8 != size:
                return False
            offset = 12
            while offset + 8 <= size:
                wav.seek(offset)
                chunk_id, chunk_size = struct.unpack("<4sI", wav.read(8))
                if chunk_id == b"data":
                    return bool(offset + 8 + chunk_size <= size)
                offset += 8 + chunk_size + (chunk_size & 1)
    except OSError:
        return False
    return False


class Pyttsx3Backend:
    """pyttsx3 as a PCM producer, with its known problems worked around in one place.

    - ``runAndWait()`` can return before the file is written: wait for the
      ``finished-utterance`` callback, then for the WAV header to match the file size.
    - Two queued ``save_to_file`` calls write only the last: one utterance at a time
      under a process-wide lock, each to a fresh file name.
    - ``runAndWait()`` ends its loop with ``stop()``, which cancels espeak while queued
      rate/volume changes are pending (the rate silently stays at the previous value) and
      leaves a stale ``_stopping`` flag that reports a later utterance as cancelled; its
      loop also sleeps 10 ms per utterance. With the espeak driver, properties are set on
      an idle engine and read back, and the utterance is started directly
      (``direct=False`` keeps the public ``runAndWait`` path, used for other drivers).
    - Every save prints to stdout: fd 1 and ``sys.stdout`` are silenced while it runs.
    - A missing engine (no espeak-ng) raises CoachError naming the package to install.
    """

    def __init__(
        self,
        driver_name: str | None = None,
        *,
        timeout_s: float = 30.0,
        direct: bool = True,
        engine_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self._driver = driver_name or _default_driver()
        self._timeout_s = timeout_s
        factory = engine_factory if engine_factory is not None else _pyttsx3_engine
        try:
            with _ENGINE_LOCK, quiet_stdout():
                self._engine = factory(self._driver)
                self._default_voice = _as_str_or_none(self._engine.getProperty("voice"))
        except CoachError:
            raise
        except Exception as err:  # third-party init fails in many ways (OSError, RuntimeError)
            hint = _INSTALL_HINTS.get(self._driver, "install a pyttsx3 speech engine")
            raise CoachError(
                f"speech synthesizer {self._driver!r} is unavailable ({err}); {hint}"
            ) from err
        self._espeak = self._espeak_driver()
        self._direct = direct and self._espeak is not None
        # The shared engine may carry another backend's voice; espeak's driver remembers
        # the real default, which keeps "default voice" cache keys stable across processes.
        initial = getattr(type(self._espeak), "_defaultVoice", None) if self._espeak else None
        if isinstance(initial, str) and initial:
            self._default_voice = initial
        self._finished = threading.Event()
        self._cancelled = False
        self._errors: list[BaseException] = []
        self._tokens = [
            self._engine.connect("finished-utterance", self._on_finished),
            self._engine.connect("error", self._on_error),
        ]
        self._tmp = Path(tempfile.mkdtemp(prefix="coach-tts-"))
        self._count = 0
        self._engine_id = self._describe_engine()
        self._closed = False

    @property
    def engine(self) -> str:
        """pyttsx3 driver name, e.g. ``espeak``."""
        return self._driver

    @property
    def engine_id(self) -> str:
        """pyttsx3 and engine versions, e.g. ``pyttsx3-2.99/espeak/espeak-ng-1.51``."""
        return self._engine_id

    @property
    def default_voice_id(self) -> str | None:
        """The voice the engine had selected when this backend started."""
        return self._default_voice

    def voices(self) -> list[SystemVoice]:
        """The system voices pyttsx3 can see."""
        with _ENGINE_LOCK, quiet_stdout():
            raw = self._engine.getProperty("voices") or []
        found: list[SystemVoice] = []
        for voice in raw:
            languages = tuple(
                lang.decode("utf-8", "replace") if isinstance(lang, bytes) else str(lang)
                for lang in (getattr(voice, "languages", None) or ())
            )
            found.append(
                SystemVoice(
                    id=str(voice.id),
                    name=str(getattr(voice, "name", None) or voice.id),
                    languages=languages,
                    gender=_as_str_or_none(getattr(voice, "gender", None)),
                )
            )
        return found

    def render(
        self, text: str, *, voice_id: str | None, rate_wpm: int, volume: float
    ) -> tuple[npt.NDArray[np.int16], int]:
        """Synthesize ``text`` to a WAV file and return its mono int16 PCM and rate."""
        if self._closed:
            raise CoachError("speech synthesizer already closed")
        with _ENGINE_LOCK:
            self._count += 1
            path = self._tmp / f"utterance-{self._count}.wav"
            self._finished.clear()
            self._cancelled = False
            self._errors.clear()
            with quiet_stdout():
                self._apply_properties(voice_id or self._default_voice, rate_wpm, volume)
                if self._direct:
                    # What runAndWait's loop does first, without its stop() and sleep.
                    self._espeak.save_to_file(text, str(path))
                    self._espeak._start_synthesis(text)
                else:
                    self._engine.save_to_file(text, str(path))
                    self._engine.runAndWait()
                # The callback fires on espeak's thread, possibly after runAndWait returned.
                finished = self._finished.wait(self._timeout_s)
                if self._cancelled and not wav_is_complete(path):
                    finished = False  # stopped by the engine: no file is coming
                complete = finished and self._wait_complete(path)
            try:
                if self._errors:
                    raise CoachError(f"speech synthesizer failed: {self._errors[0]}")
                if not finished:
                    raise CoachError(f"speech synthesizer did not finish: {text[:40]!r}")
                if not complete:
                    raise CoachError(f"speech synthesizer wrote an incomplete file: {path}")
                return _read_wav_int16(path)
            finally:
                with contextlib.suppress(OSError):
                    path.unlink()

    def close(self) -> None:
        """Disconnect callbacks and remove temporary files (the engine lives per process)."""
        if self._closed:
            return
        self._closed = True
        with _ENGINE_LOCK:
            for token in self._tokens:
                with contextlib.suppress(Exception):
                    self._engine.disconnect(token)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _on_finished(self, completed: bool = True, **_: object) -> None:
        if not completed:
            self._cancelled = True
        self._finished.set()

    def _on_error(self, exception: BaseException | None = None, **_: object) -> None:
        self._errors.append(exception or RuntimeError("unknown pyttsx3 error"))

    def _apply_properties(self, voice: str | None, rate_wpm: int, volume: float) -> None:
        """Select voice, rate and volume so that they really apply to the next utterance."""
        driver = self._espeak
        if driver is None:
            # Other drivers: pyttsx3 queues these and applies them before the utterance.
            if voice:
                self._engine.setProperty("voice", voice)
            self._engine.setProperty("rate", rate_wpm)
            self._engine.setProperty("volume", volume)
            return
        from pyttsx3.drivers import _espeak

        driver._stopping = False
        # Re-applying unchanged settings costs ~2 ms a phrase of waiting for espeak. The
        # record lives on the driver: a new pyttsx3 engine resets espeak and starts clean.
        settings = (voice, rate_wpm, volume)
        if getattr(driver, "_coach_settings", None) == settings:
            return
        driver._coach_settings = None
        self._wait_espeak_idle(_espeak)
        try:
            if voice:
                driver.setProperty("voice", voice)
            driver.setProperty("rate", rate_wpm)
            driver.setProperty("volume", volume)
        except ValueError as err:
            raise CoachError(f"espeak-ng rejected voice settings: {err}") from err
        # espeak queues parameter changes; wait until they are applied, then check them.
        self._wait_espeak_idle(_espeak)
        applied = (_espeak_current(_espeak, _espeak.RATE), _espeak_current(_espeak, _espeak.VOLUME))
        wanted = (rate_wpm, round(volume * 100))
        if None not in applied and applied != wanted:
            raise CoachError(f"espeak-ng did not apply rate/volume {wanted}, has {applied}")
        driver._coach_settings = settings

    def _espeak_driver(self) -> Any:
        """pyttsx3's espeak driver object, if that is what runs (None otherwise)."""
        if self._driver != "espeak":
            return None
        driver = getattr(getattr(self._engine, "proxy", None), "_driver", None)
        needed = ("_stopping", "_start_synthesis", "save_to_file", "setProperty")
        return driver if all(hasattr(driver, name) for name in needed) else None

    def _wait_espeak_idle(self, espeak: Any) -> None:
        deadline = time.monotonic() + self._timeout_s
        while espeak.IsPlaying():
            if time.monotonic() > deadline:
                raise CoachError("espeak-ng stayed busy; speech synthesis is stuck")
            time.sleep(0.0002)

    def _wait_complete(self, path: Path) -> bool:
        """Wait until the WAV header matches the file size (other drivers write lazily)."""
        deadline = time.monotonic() + self._timeout_s
        while not wav_is_complete(path):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _describe_engine(self) -> str:
        parts = [f"pyttsx3-{_package_version('pyttsx3')}", self._driver]
        if self._driver == "espeak":
            with contextlib.suppress(Exception):
                from pyttsx3.drivers import _espeak

                info = _espeak.Info(None)
                parts.append(f"espeak-ng-{info.decode() if isinstance(info, bytes) else info}")
        else:
            import platform

            parts.append(f"{platform.system()}-{platform.release()}")
        return "/".join(parts)


def _pyttsx3_engine(driver_name: str) -> Any:
    import pyttsx3

    return pyttsx3.init(driver_name)


def _espeak_current(espeak: Any, parameter: int) -> int | None:
    """Current value of an espeak parameter (pyttsx3's binding omits the ``current`` flag)."""
    try:
        func = espeak.dll.espeak_GetParameter
        func.restype = ctypes.c_int
        func.argtypes = (ctypes.c_int, ctypes.c_int)
        return int(func(parameter, 1))
    except Exception:
        return None


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _as_str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _read_wav_int16(path: Path) -> tuple[npt.NDArray[np.int16], int]:
    import soundfile

    data, rate_hz = soundfile.read(str(path), dtype="int16", always_2d=True)
    frames = np.asarray(data, dtype=np.int16)
    if frames.shape[1] == 1:
        return frames[:, 0].copy(), int(rate_hz)
    mono = frames.astype(np.int32).mean(axis=1)
    return np.round(mono).astype(np.int16), int(rate_hz)


def trim_silence(pcm: npt.NDArray[np.int16], sample_rate_hz: int) -> npt.NDArray[np.int16]:
    """Cut leading/trailing silence, keeping TRIM_LEAD_MS before and TRIM_TAIL_MS after."""
    loud = (pcm > TRIM_THRESHOLD) | (pcm < -TRIM_THRESHOLD)
    if not loud.any():
        return pcm[:0].copy()
    first = int(loud.argmax())
    last = len(pcm) - 1 - int(loud[::-1].argmax())
    start = max(0, first - TRIM_LEAD_MS * sample_rate_hz // 1000)
    end = min(len(pcm), last + 1 + TRIM_TAIL_MS * sample_rate_hz // 1000)
    return pcm[start:end].copy()


def _resample_int16(pcm: npt.NDArray[np.int16], from_hz: int, to_hz: int) -> npt.NDArray[np.int16]:
    if from_hz == to_hz or len(pcm) == 0:
        return pcm
    from scipy.signal import resample_poly

    common = gcd(from_hz, to_hz)
    out = np.asarray(
        resample_poly(pcm.astype(np.float64), to_hz // common, from_hz // common), np.float64
    )
    resampled: npt.NDArray[np.int16] = np.clip(np.round(out), -32768, 32767).astype(np.int16)
    return resampled


@dataclass(slots=True)
class _Memo:
    phrases: OrderedDict[str, Phrase] = field(default_factory=OrderedDict)
    nbytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Synthesizer:
    """Speaks text with a voice profile: phrases come from memory, the disk cache, or pyttsx3.

    ``cache=None`` uses the default on-disk cache (``cache_dir()/phrases``); pass
    ``use_cache=False`` to synthesize every phrase afresh. ``backend`` defaults to a
    :class:`Pyttsx3Backend` on this platform's engine.
    """

    def __init__(
        self,
        profile: VoiceProfile,
        cache: PhraseCache | None = None,
        *,
        use_cache: bool = True,
        backend: SpeechBackend | None = None,
    ) -> None:
        self.profile = profile
        self.cache: PhraseCache | None = (cache or PhraseCache()) if use_cache else None
        self._owns_backend = backend is None
        self._backend: SpeechBackend = backend if backend is not None else Pyttsx3Backend()
        self.voice: ResolvedVoice = resolve_system_voice(
            profile, self._backend.engine, self._backend.voices()
        )
        self.stats = SynthesisStats()
        self.sample_rate_hz = SAMPLE_RATE_HZ
        self._memo = _Memo()
        self._pause = np.zeros(profile.sentence_pause_ms * SAMPLE_RATE_HZ // 1000, np.int16)

    @property
    def engine_id(self) -> str:
        """The engine that produces the sound (part of the cache key)."""
        return self._backend.engine_id

    def cache_key(self, text: str) -> str:
        """Cache key of ``text``: every input that changes the synthesized sound."""
        return phrase_key(
            {
                "engine": self._backend.engine_id,
                "voice": self.voice.voice_id or f"default:{self._backend.default_voice_id}",
                "rate_wpm": self.profile.rate_wpm,
                "volume": round(self.profile.volume, 4),
                "sample_rate_hz": SAMPLE_RATE_HZ,
                "text": _normalize(text),
            }
        )

    def synthesize(self, text: str) -> Phrase:
        """The phrase for ``text`` (memory, then disk cache, then the synthesizer)."""
        spoken = _normalize(text)
        with self._memo.lock:
            memo = self._memo.phrases.get(spoken)
            if memo is not None:
                self._memo.phrases.move_to_end(spoken)
                self.stats.memory_hits += 1
                return memo
        speech = self._speech_pcm(spoken)
        pcm16 = np.concatenate([speech, self._pause]) if len(speech) else speech
        pcm = (pcm16.astype(np.float32) / np.float32(32768.0)).astype(np.float32)
        pcm.flags.writeable = False  # shared between callers through the memo
        phrase = Phrase(text=spoken, pcm=pcm, sample_rate_hz=SAMPLE_RATE_HZ)
        with self._memo.lock:
            if spoken not in self._memo.phrases:
                self._memo.phrases[spoken] = phrase
                self._memo.nbytes += phrase.pcm.nbytes
            while self._memo.nbytes > MEMO_BYTES and len(self._memo.phrases) > 1:
                _, dropped = self._memo.phrases.popitem(last=False)
                self._memo.nbytes -= dropped.pcm.nbytes
        return phrase

    def speech_ms(self, text: str) -> int:
        """Measured length of ``text`` as spoken, in ms (a SpeechTimer for the timeline)."""
        return self.synthesize(text).duration_ms

    def close(self) -> None:
        """Release the backend if this synthesizer created it."""
        if self._owns_backend:
            self._backend.close()

    def __enter__(self) -> Synthesizer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _speech_pcm(self, spoken: str) -> npt.NDArray[np.int16]:
        """Trimmed int16 speech at SAMPLE_RATE_HZ, without the sentence pause."""
        if not spoken:
            return np.zeros(0, np.int16)
        key = self.cache_key(spoken)
        if self.cache is not None:
            entry = self.cache.get(key, spoken)
            if entry is not None and entry[1] == SAMPLE_RATE_HZ:
                with self._memo.lock:
                    self.stats.hits += 1
                return entry[0]
        started = time.perf_counter()
        speech = self._render(spoken)
        if not len(speech) and any(ch.isalnum() for ch in spoken):
            # Words that come out as silence are a synthesizer hiccup; never cache that.
            speech = self._render(spoken)
            if not len(speech):
                raise CoachError(f"speech synthesizer produced silence for {spoken[:40]!r}")
        with self._memo.lock:
            self.stats.synth_s += time.perf_counter() - started
            self.stats.misses += 1
        if self.cache is not None:
            self.cache.put(key, spoken, speech, SAMPLE_RATE_HZ)
        return speech

    def _render(self, spoken: str) -> npt.NDArray[np.int16]:
        raw, rate_hz = self._backend.render(
            spoken,
            voice_id=self.voice.voice_id,
            rate_wpm=self.profile.rate_wpm,
            volume=self.profile.volume,
        )
        return trim_silence(_resample_int16(raw, rate_hz, SAMPLE_RATE_HZ), SAMPLE_RATE_HZ)


def _normalize(text: str) -> str:
    """Collapse whitespace: it never changes the sound, so it must not change the key."""
    return " ".join(text.split())
