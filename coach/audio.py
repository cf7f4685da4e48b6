"""Speaker and microphone through PortAudio: an interruptible queue of clips out, 16 kHz blocks in.

Both directions run PortAudio callback streams. Every block carries the PortAudio stream time
(``outputBufferDacTime`` / ``inputBufferAdcTime``), one clock shared by all streams of the
process, so the speaker blocks handed to ``reference`` line up with the microphone blocks for
echo handling.

sounddevice is imported lazily: without libportaudio it raises OSError at import time, and
that must become a clear message (``AudioUnavailable``), never a traceback.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import math
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any, Literal, Protocol, Self

import numpy as np
import numpy.typing as npt

from coach.errors import CoachError
from coach.resample import StreamResampler, resample

FloatArray = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]

INPUT_SAMPLE_RATE_HZ = 16_000
"""The listener's rate: every microphone block is 16 kHz mono int16."""
BLOCK_MS = 20
"""Microphone block length handed to the listener."""
OUTPUT_BLOCK_MS = 10
"""Speaker callback block length. At PortAudio's "low" latency the ALSA ``pulse`` device
buffers about three blocks, so the block size sets how soon an interruption is heard:
measured interrupt-call -> recorded silence (20 ms fade included) was ~50 ms with 10 ms
blocks and ~85 ms with 20 ms blocks; ``OUTPUT_LATENCY_S`` adds to it."""
OUTPUT_LATENCY_S = 0.05
"""Output latency asked of PortAudio. PortAudio's "low" (about 30 ms through the ALSA
``pulse`` device) underflowed 5-9 times in most minute-long sessions: each underflow is a
gap the user hears and moves the echo under the canceller. The live end-to-end test
(tests/test_run_e2e.py, vosk-ko, 4 runs each, session 4) passed 0 of 4 at "low", 3 of 4
at 50 ms and 3 of 4 at 80 ms. The price is the time an interruption takes to be heard:
interrupt call -> recorded silence 50 ms at "low", 108 ms at 50 ms, 140 ms at 80 ms
(tests/test_audio_pulse.py), well inside the 300 ms PAIN budget. With every other
underflow cause removed, "low" still underflowed in each of 12 short sessions."""
DEFAULT_FADE_MS = 20
"""Raised-cosine fade applied when speech is interrupted: long enough to avoid a click."""
UNDERFLOW_TIMES_KEPT = 20
"""How many underflow times ``Output`` keeps for the end-of-session diagnostics."""
SILENCE_DBFS = -120.0
"""The level reported for a block of digital silence (log of zero is not a number)."""

DeviceKind = Literal["input", "output"]
DeviceSpec = int | str | None
"""A device by index, by (case-insensitive part of its) name, or None for the default."""


class AudioUnavailable(CoachError):
    """No sound server, no suitable device, or a stream that cannot be opened."""


class DeviceLost(CoachError):
    """A device disappeared (or its stream died) while it was in use."""


# ---------------------------------------------------------------------------------------------
# PortAudio access


SWITCH_INTERVAL_S = 0.001
"""How often the interpreter hands its lock to another thread during a live session.

PortAudio calls the speaker's callback every 10 ms, and the callback needs the lock. Python
only asks a busy thread to give it up every 5 ms (``sys.getswitchinterval``), and while the
model loads and the listener catches up, three threads want it: with the default, 4 of 8
starts of the short routine (the coach's echo in the microphone) underflowed 2-3 s in;
with 1 ms, none of 8."""


@contextlib.contextmanager
def favour_audio_callbacks(interval_s: float = SWITCH_INTERVAL_S) -> Iterator[None]:
    """Let the audio callbacks get the interpreter lock sooner while this block runs."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _sounddevice() -> ModuleType:
    """The sounddevice module, or AudioUnavailable when PortAudio itself is missing."""
    try:
        import sounddevice
    except OSError as err:  # libportaudio2 not installed
        message = f"PortAudio is not available ({err}); install libportaudio2"
        raise AudioUnavailable(message) from err
    module: ModuleType = sounddevice
    return module


_ALSA_HANDLER: list[object] = []  # keeps the ctypes callback alive while ALSA may call it


def _silence_alsa_messages() -> None:
    """Stop libasound printing to stderr ("underrun occurred" over the status line).

    Underruns are counted in ``Output.underflows`` instead. Linux only; harmless elsewhere.
    """
    if _ALSA_HANDLER:
        return
    import ctypes
    import ctypes.util

    _ALSA_HANDLER.append(None)
    name = ctypes.util.find_library("asound")
    if name is None:
        return
    try:
        library = ctypes.CDLL(name)
        # snd_lib_error_handler_t is variadic; a handler that ignores the rest is fine.
        handler_type = ctypes.CFUNCTYPE(
            None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
        )
        handler = handler_type(lambda *_: None)
        library.snd_lib_error_set_handler(handler)
    except (OSError, AttributeError):
        return
    _ALSA_HANDLER.append(handler)


def _portaudio_errors() -> tuple[type[BaseException], ...]:
    try:
        sd = _sounddevice()
    except AudioUnavailable:
        return (OSError,)
    return (sd.PortAudioError, OSError)


def refresh_devices() -> None:
    """Re-enumerate devices (PortAudio lists them once, at initialisation).

    Only call this while no stream is open, e.g. after a sound server has been started.
    """
    sd = _sounddevice()
    sd._terminate()
    sd._initialize()


# ---------------------------------------------------------------------------------------------
# Devices


@dataclass(frozen=True)
class Device:
    """One PortAudio device as the user sees it in ``coach devices``."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate_hz: int
    is_default_input: bool = False
    is_default_output: bool = False

    def supports(self, kind: DeviceKind) -> bool:
        """Whether the device has channels in that direction."""
        channels = self.max_input_channels if kind == "input" else self.max_output_channels
        return channels > 0

    def to_json(self) -> dict[str, object]:
        """A plain dict for ``--json`` output."""
        return {
            "index": self.index,
            "name": self.name,
            "host_api": self.host_api,
            "max_input_channels": self.max_input_channels,
            "max_output_channels": self.max_output_channels,
            "default_sample_rate_hz": self.default_sample_rate_hz,
            "default_input": self.is_default_input,
            "default_output": self.is_default_output,
        }


def _default_indices(sd: ModuleType) -> tuple[int, int]:
    try:
        pair = sd.default.device
        return int(pair[0]), int(pair[1])
    except (TypeError, ValueError, IndexError):
        return -1, -1


def list_devices() -> list[Device]:
    """Every device PortAudio knows; empty when there is no sound server or no sound card."""
    sd = _sounddevice()
    try:
        raw = sd.query_devices()
        apis = sd.query_hostapis()
        default_in, default_out = _default_indices(sd)
    except _portaudio_errors():
        return []
    devices = []
    for info in raw:
        index = int(info["index"])
        try:
            host_api = str(apis[int(info["hostapi"])]["name"])
        except (IndexError, KeyError, TypeError):
            host_api = "?"
        devices.append(
            Device(
                index=index,
                name=str(info["name"]),
                host_api=host_api,
                max_input_channels=int(info["max_input_channels"]),
                max_output_channels=int(info["max_output_channels"]),
                default_sample_rate_hz=round(float(info["default_samplerate"])),
                is_default_input=index == default_in,
                is_default_output=index == default_out,
            )
        )
    return devices


def pick_device(
    spec: DeviceSpec, kind: DeviceKind, devices: Sequence[Device] | None = None
) -> Device:
    """The device ``spec`` names (index, exact or partial name, None for the default).

    Raises AudioUnavailable when there is no device at all and CoachError (listing the
    candidates) when ``spec`` matches none or several.
    """
    pool = [d for d in (list_devices() if devices is None else devices) if d.supports(kind)]
    if not pool:
        raise AudioUnavailable(f"no audio {kind} device found (is a sound server running?)")
    candidates = "; ".join(f"{d.index}: {d.name}" for d in pool)
    if spec is None or (isinstance(spec, str) and spec.strip() == ""):
        flag = "is_default_input" if kind == "input" else "is_default_output"
        for device in pool:
            if getattr(device, flag):
                return device
        return pool[0]
    text = str(spec).strip()
    if isinstance(spec, int) or text.lstrip("-").isdigit():
        number = int(text)
        for device in pool:
            if device.index == number:
                return device
        raise CoachError(f"no audio {kind} device with index {number}; choose one of: {candidates}")
    wanted = text.casefold()
    exact = [d for d in pool if d.name.casefold() == wanted]
    if exact:
        return exact[0]
    partial = [d for d in pool if wanted in d.name.casefold()]
    if len(partial) == 1:
        return partial[0]
    if partial:
        names = "; ".join(f"{d.index}: {d.name}" for d in partial)
        raise CoachError(f"audio {kind} device {text!r} is ambiguous; it matches: {names}")
    raise CoachError(f"no audio {kind} device matches {text!r}; choose one of: {candidates}")


@dataclass(frozen=True)
class Probe:
    """Whether a direction is usable: the device, or the reason it is not."""

    device: Device | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when a stream can be opened on ``device``."""
        return self.device is not None and not self.reason


def _probe(kind: DeviceKind, spec: DeviceSpec, sample_rate_hz: int | None) -> Probe:
    try:
        sd = _sounddevice()
        device = pick_device(spec, kind)
    except AudioUnavailable as err:
        return Probe(None, err.message)
    rate = sample_rate_hz or device.default_sample_rate_hz
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    problem: BaseException | None = None
    for channels in (1, 2):  # as Output does: stereo-only devices get mono on both sides
        try:
            check(device=device.index, channels=channels, dtype="float32", samplerate=rate)
        except _open_errors() as err:
            problem = problem or err
        else:
            return Probe(device)
    return Probe(device, f"audio {kind} device {device.name!r} cannot be used: {problem}")


def probe_output(spec: DeviceSpec = None, sample_rate_hz: int | None = None) -> Probe:
    """Can we play? ``reason`` says why not (no sound server, no device, unusable device).

    A ``spec`` that names no device (or several) is the user's mistake, not a missing
    device: it raises CoachError listing the candidates.
    """
    return _probe("output", spec, sample_rate_hz)


def probe_input(spec: DeviceSpec = None) -> Probe:
    """Can we record? ``reason`` says why not; a ``spec`` naming no device raises CoachError."""
    return _probe("input", spec, None)


def _resolve(spec: Device | DeviceSpec, kind: DeviceKind) -> Device:
    return spec if isinstance(spec, Device) else pick_device(spec, kind)


# ---------------------------------------------------------------------------------------------
# Blocks, levels, events


def level_dbfs(pcm: npt.ArrayLike, full_scale: float = 1.0) -> float:
    """RMS level of a block in dB relative to full scale (``SILENCE_DBFS`` for silence)."""
    x = np.asarray(pcm, dtype=np.float64) / full_scale
    if x.size == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(x * x)))
    if rms <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(rms))


@dataclass(frozen=True)
class AudioBlock:
    """A block of mono samples with the stream time of its first sample."""

    pcm: npt.NDArray[Any]
    """float32 for the speaker reference, int16 for the microphone."""
    sample_rate_hz: int
    time_s: float
    """PortAudio stream time of the first sample: when it reaches the DAC (speaker) or left
    the ADC (microphone). Same clock as ``Output.time_s()``."""
    level_dbfs: float
    after_gap: bool = False
    """Speaker blocks only: the stream fell behind just before this block (an underflow), so
    the speaker may have gone silent for a moment and play on later than its block times
    say: the coach's echo may sit at a new delay from here on."""

    @property
    def duration_ms(self) -> float:
        """Length of the block in milliseconds."""
        return 1000.0 * len(self.pcm) / self.sample_rate_hz


class PlaybackEventKind(enum.StrEnum):
    """What happened to a queued clip."""

    STARTED = "started"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    """Faded out part-way by ``interrupt()``."""
    DROPPED = "dropped"
    """Removed from the queue by ``interrupt()`` before it started."""
    LOST = "lost"
    """The device went away; ``item_id`` is -1 and ``error`` says why."""


@dataclass(frozen=True)
class PlaybackEvent:
    """A clip started, finished, was interrupted or dropped (or the device was lost)."""

    kind: PlaybackEventKind
    item_id: int
    tag: object
    time_s: float
    """Stream time at which the clip's first (STARTED) or last (FINISHED, INTERRUPTED) sample
    reaches the DAC; for DROPPED and LOST, the stream time when it was decided."""
    error: str = ""


class CallbackTime(Protocol):
    """The timing struct PortAudio hands to callbacks (only the fields we read)."""

    @property
    def currentTime(self) -> float: ...

    @property
    def outputBufferDacTime(self) -> float: ...

    @property
    def inputBufferAdcTime(self) -> float: ...


class Stream(Protocol):
    """The part of a sounddevice stream we use; tests inject a fake."""

    @property
    def time(self) -> float: ...

    @property
    def active(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


StreamFactory = Callable[..., Stream]
"""Called with sounddevice keyword arguments (device, samplerate, blocksize, channels, dtype,
latency, callback, finished_callback); returns an unstarted stream."""

EventSink = Callable[[PlaybackEvent], None]
BlockSink = Callable[[AudioBlock], None]


# ---------------------------------------------------------------------------------------------
# Output


@dataclass
class _Clip:
    item_id: int
    pcm: FloatArray
    uninterruptible: bool
    tag: object
    pos: int = 0
    fade: FloatArray | None = None
    """The ramp still to apply once interrupted (None while playing normally)."""
    fade_done: int = 0


def fade_curve(n_samples: int) -> FloatArray:
    """A raised-cosine ramp from 1 down to 0 over ``n_samples`` (last sample is 0)."""
    if n_samples <= 0:
        return np.zeros(0, dtype=np.float32)
    phase = np.arange(1, n_samples + 1, dtype=np.float64) / n_samples
    return (0.5 * (1.0 + np.cos(np.pi * phase))).astype(np.float32)


class PlaybackQueue:
    """The clips waiting to be played and the one playing; renders one block at a time.

    Thread-safe: ``render`` runs on the audio thread, everything else on the session's.
    Stream-agnostic, so it is tested by calling ``render`` directly.
    """

    def __init__(
        self,
        sample_rate_hz: int,
        *,
        on_event: EventSink | None = None,
        reference: BlockSink | None = None,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._on_event = on_event
        self._reference = reference
        self._lock = threading.Lock()
        self._clips: deque[_Clip] = deque()
        self._current: _Clip | None = None
        self._ids = itertools.count(1)
        self._idle = threading.Event()
        self._idle.set()
        self.events: queue.SimpleQueue[PlaybackEvent] = queue.SimpleQueue()
        """Every event, for sessions that poll instead of passing ``on_event``."""
        self.last_time_s = 0.0
        """Stream time of the latest DAC block rendered (0 before the first)."""

    def _fade_len(self, fade_ms: float) -> int:
        return max(1, round(self.sample_rate_hz * fade_ms / 1000.0))

    def play(
        self,
        pcm: npt.ArrayLike,
        sample_rate_hz: int,
        *,
        uninterruptible: bool = False,
        tag: object = None,
    ) -> int:
        """Queue a mono clip (resampled to the output rate); returns its item id."""
        x = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if sample_rate_hz != self.sample_rate_hz:
            x = resample(x, sample_rate_hz, self.sample_rate_hz)
        clip = _Clip(next(self._ids), np.clip(x, -1.0, 1.0), uninterruptible, tag)
        with self._lock:
            self._clips.append(clip)
            self._idle.clear()
        return clip.item_id

    def interrupt(self, fade_ms: float = DEFAULT_FADE_MS, *, time_s: float | None = None) -> None:
        """Fade out the playing clip (unless uninterruptible) and drop queued interruptible ones.

        The fade starts with the next block rendered; uninterruptible clips play on in order.
        """
        dropped: list[PlaybackEvent] = []
        now = self.last_time_s if time_s is None else time_s
        with self._lock:
            current = self._current
            if current is not None and not current.uninterruptible and current.fade is None:
                current.fade = fade_curve(self._fade_len(fade_ms))
            kept: deque[_Clip] = deque()
            for clip in self._clips:
                if clip.uninterruptible:
                    kept.append(clip)
                else:
                    dropped.append(
                        PlaybackEvent(PlaybackEventKind.DROPPED, clip.item_id, clip.tag, now)
                    )
            self._clips = kept
            if self._current is None and not self._clips:
                self._idle.set()
        for event in dropped:
            self._emit(event)

    def idle(self) -> bool:
        """True when nothing is playing or queued (the last block may still be in the DAC)."""
        return self._idle.is_set()

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until idle; False on timeout."""
        return self._idle.wait(timeout_s)

    def playing(self) -> object:
        """The tag of the clip being played, or None."""
        with self._lock:
            return None if self._current is None else self._current.tag

    def pending(self) -> int:
        """How many clips are playing or queued."""
        with self._lock:
            return len(self._clips) + (self._current is not None)

    def render(self, frames: int, dac_time_s: float, *, after_gap: bool = False) -> FloatArray:
        """The next ``frames`` samples (audio thread). Also feeds ``reference`` and events;
        ``after_gap``: the stream fell behind before these (see ``AudioBlock.after_gap``)."""
        out = np.zeros(frames, dtype=np.float32)
        rate = self.sample_rate_hz
        events: list[PlaybackEvent] = []
        with self._lock:
            self.last_time_s = dac_time_s
            filled = 0
            while filled < frames:
                if self._current is None:
                    if not self._clips:
                        break
                    self._current = self._clips.popleft()
                    events.append(
                        PlaybackEvent(
                            PlaybackEventKind.STARTED,
                            self._current.item_id,
                            self._current.tag,
                            dac_time_s + filled / rate,
                        )
                    )
                clip = self._current
                n = min(frames - filled, clip.pcm.size - clip.pos)
                chunk = clip.pcm[clip.pos : clip.pos + n]
                ended_by_fade = False
                if clip.fade is not None:
                    n = min(n, clip.fade.size - clip.fade_done)
                    chunk = chunk[:n] * clip.fade[clip.fade_done : clip.fade_done + n]
                    clip.fade_done += n
                    ended_by_fade = clip.fade_done >= clip.fade.size
                out[filled : filled + n] = chunk
                clip.pos += n
                filled += n
                if ended_by_fade or clip.pos >= clip.pcm.size:
                    kind = (
                        PlaybackEventKind.INTERRUPTED
                        if ended_by_fade and clip.pos < clip.pcm.size
                        else PlaybackEventKind.FINISHED
                    )
                    events.append(
                        PlaybackEvent(kind, clip.item_id, clip.tag, dac_time_s + filled / rate)
                    )
                    self._current = None
            if self._current is None and not self._clips:
                self._idle.set()
        if self._reference is not None:
            self._reference(
                AudioBlock(out.copy(), rate, dac_time_s, level_dbfs(out), after_gap=after_gap)
            )
        for event in events:
            self._emit(event)
        return out

    def fail(self, reason: str, time_s: float) -> None:
        """The device is gone: drop everything, report LOST, wake ``wait_idle``."""
        with self._lock:
            self._clips.clear()
            self._current = None
            self._idle.set()
        self._emit(PlaybackEvent(PlaybackEventKind.LOST, -1, None, time_s, reason))

    def _emit(self, event: PlaybackEvent) -> None:
        self.events.put(event)
        if self._on_event is not None:
            self._on_event(event)


def _default_output_factory(**kwargs: Any) -> Stream:
    _silence_alsa_messages()
    stream: Stream = _sounddevice().OutputStream(**kwargs)
    return stream


def _default_input_factory(**kwargs: Any) -> Stream:
    _silence_alsa_messages()
    stream: Stream = _sounddevice().InputStream(**kwargs)
    return stream


def _open_errors() -> tuple[type[BaseException], ...]:
    return (*_portaudio_errors(), ValueError)


def _release(stream: Any) -> None:
    """Stop and close a PortAudio stream; one that already died must not raise."""
    with contextlib.suppress(Exception):
        stream.stop()
    with contextlib.suppress(Exception):
        stream.close()


class _DeviceStream:
    """What the speaker and the microphone share: opening their stream, watching it for
    faults and stalls, and releasing it."""

    _kind: DeviceKind
    device: Device | None
    _stream: Stream

    def __init__(self) -> None:
        self._error: DeviceLost | None = None
        self._closing = False
        self._last_callback = time.monotonic()

    def _open(self, open_stream: Callable[[], Stream]) -> None:
        """Open and start the stream; AudioUnavailable (naming the device) if either fails."""
        try:
            self._stream = open_stream()
        except _open_errors() as err:
            raise self._unavailable(err) from err
        try:
            self._stream.start()
        except _open_errors() as err:
            self._closing = True
            with contextlib.suppress(Exception):
                self._stream.close()
            raise self._unavailable(err) from err

    def _unavailable(self, err: BaseException) -> AudioUnavailable:
        name = self.device.name if self.device else "default"
        return AudioUnavailable(f"cannot open audio {self._kind} {name!r}: {err}")

    @property
    def error(self) -> DeviceLost | None:
        """Why the stream died, if it did."""
        return self._error

    def _watching(self) -> bool:
        """Whether a silent stream counts as stalled yet."""
        return True

    def check(self, stall_s: float | None = None) -> None:
        """Raise DeviceLost if the stream died (or produced no callback for ``stall_s``)."""
        if (
            self._error is None
            and stall_s is not None
            and not self._closing
            and self._watching()
            and time.monotonic() - self._last_callback > stall_s
        ):
            self._lose(f"audio {self._kind} stopped responding for {stall_s:g} s")
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop at once and release the device."""
        self._closing = True
        _release(self._stream)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _finished(self) -> None:
        if not self._closing:
            self._lose(f"the audio {self._kind} device stopped (was it unplugged?)")

    def _lose(self, reason: str) -> None:
        if self._error is None:
            self._error = DeviceLost(reason)
            self._lost(self._error)

    def _lost(self, error: DeviceLost) -> None:
        """The stream died: tell whoever waits on it (audio or calling thread)."""


class Output(_DeviceStream):
    """The coach's speaker: a callback stream playing queued clips in short (10 ms) blocks.

    ``on_event`` and ``reference`` run on the audio thread (DROPPED events on the thread
    calling ``interrupt``): keep them quick, e.g. append to a queue. ``reference`` receives
    exactly the mono block written, every block, silence too, stamped with its DAC time.
    Events also go to ``events`` (a queue) for sessions that poll.
    """

    def __init__(
        self,
        device: Device | DeviceSpec = None,
        *,
        sample_rate_hz: int | None = None,
        block_ms: int = OUTPUT_BLOCK_MS,
        latency: float | str = OUTPUT_LATENCY_S,
        on_event: EventSink | None = None,
        reference: BlockSink | None = None,
        stream_factory: StreamFactory | None = None,
    ) -> None:
        super().__init__()
        self._kind = "output"
        if stream_factory is None:
            self.device: Device | None = _resolve(device, "output")
            rate = sample_rate_hz or self.device.default_sample_rate_hz
        else:
            # A fake stream needs no real device; still honour one passed in.
            self.device = device if isinstance(device, Device) else None
            rate = sample_rate_hz or (self.device.default_sample_rate_hz if self.device else 48_000)
        self.sample_rate_hz = rate
        self.block_frames = max(1, round(rate * block_ms / 1000))
        self._queue = PlaybackQueue(rate, on_event=on_event, reference=reference)
        self.events = self._queue.events
        self.channels = 1
        """1, or 2 for devices that only open in stereo (the mono signal goes to both)."""
        self.underflows = 0
        """Blocks PortAudio asked for too late (the speaker heard a gap); for diagnostics."""
        self.underflow_times_s: list[float] = []
        """When the first few underflows happened, in seconds after the first block."""
        self._first_callback: float | None = None
        factory = stream_factory or _default_output_factory
        kwargs: dict[str, Any] = {
            "samplerate": rate,
            "blocksize": self.block_frames,
            "dtype": "float32",
            "latency": latency,
            "callback": self._callback,
            "finished_callback": self._finished,
        }
        if self.device is not None:
            kwargs["device"] = self.device.index

        def open_stream() -> Stream:
            try:
                return factory(channels=1, **kwargs)
            except _open_errors():
                # Some hardware devices only open in stereo; write the mono signal to both.
                self.channels = 2
                return factory(channels=2, **kwargs)

        self._open(open_stream)

    # -- session side --------------------------------------------------------------------------

    def play(
        self,
        pcm: npt.ArrayLike,
        sample_rate_hz: int,
        *,
        uninterruptible: bool = False,
        tag: object = None,
    ) -> int:
        """Queue a mono float clip; returns its item id. Raises DeviceLost if the device is gone."""
        self.check()
        return self._queue.play(pcm, sample_rate_hz, uninterruptible=uninterruptible, tag=tag)

    def interrupt(self, fade_ms: float = DEFAULT_FADE_MS) -> None:
        """Fade out the current interruptible clip and flush queued interruptible clips."""
        self._queue.interrupt(fade_ms, time_s=self.time_s())

    def idle(self) -> bool:
        """True when nothing is playing or queued."""
        return self._queue.idle()

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until idle (False on timeout); raises DeviceLost if the device went away."""
        done = self._queue.wait_idle(timeout_s)
        self.check()
        return done

    def playing(self) -> object:
        """The tag of the clip being played, or None."""
        return self._queue.playing()

    def pending(self) -> int:
        """How many clips are playing or queued."""
        return self._queue.pending()

    def time_s(self) -> float:
        """Current PortAudio stream time (the clock of every event and block time)."""
        try:
            return float(self._stream.time)
        except Exception:  # a dead stream cannot tell the time; the last block can
            return self._queue.last_time_s

    # -- audio thread --------------------------------------------------------------------------

    def _callback(
        self, outdata: npt.NDArray[np.float32], frames: int, time_info: CallbackTime, status: object
    ) -> None:
        self._last_callback = now = time.monotonic()
        if self._first_callback is None:
            self._first_callback = now
        underflow = status is not None and bool(getattr(status, "output_underflow", False))
        if underflow:
            self.underflows += 1
            if len(self.underflow_times_s) < UNDERFLOW_TIMES_KEPT:
                self.underflow_times_s.append(now - self._first_callback)
        block = self._queue.render(
            frames, float(time_info.outputBufferDacTime), after_gap=underflow
        )
        outdata[:] = block[:, None]

    def _lost(self, error: DeviceLost) -> None:
        # Whatever is queued is discarded, and wait_idle wakes up.
        self._queue.fail(error.message, self._queue.last_time_s)


# ---------------------------------------------------------------------------------------------
# Input


class Capture:
    """Turns device blocks (any rate, float) into 16 kHz mono int16 AudioBlocks."""

    def __init__(self, device_rate_hz: int, deliver: BlockSink, block_ms: int = BLOCK_MS) -> None:
        self.device_rate_hz = device_rate_hz
        self._deliver = deliver
        self._resampler = StreamResampler(device_rate_hz, INPUT_SAMPLE_RATE_HZ)
        self._block = max(1, INPUT_SAMPLE_RATE_HZ * block_ms // 1000)
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_start = 0  # output sample index of _pending[0]

    def feed(self, pcm: npt.NDArray[np.float32], adc_time_s: float) -> None:
        """One device block (mono float) whose first sample left the ADC at ``adc_time_s``."""
        first_in = self._resampler.samples_in
        y = self._resampler.process(pcm)
        if self._pending.size == 0:
            self._pending_start = self._resampler.samples_out - y.size
            self._pending = y
        else:
            self._pending = np.concatenate((self._pending, y))
        while self._pending.size >= self._block:
            chunk, self._pending = self._pending[: self._block], self._pending[self._block :]
            start = self._pending_start
            self._pending_start += self._block
            # Output sample `start` sits at input position p; input sample `first_in` at ADC time.
            position = self._resampler.input_position(start)
            t = adc_time_s + (position - first_in) / self.device_rate_hz
            pcm16 = np.clip(np.round(chunk * 32767.0), -32768, 32767).astype(np.int16)
            self._deliver(AudioBlock(pcm16, INPUT_SAMPLE_RATE_HZ, t, level_dbfs(chunk)))


class Input(_DeviceStream):
    """The coach's microphone: 16 kHz mono int16 blocks (with stream time and level).

    Blocks go to ``on_block`` (audio thread: keep it quick) or, without one, into
    ``blocks`` (a bounded queue; the oldest block is dropped when nobody reads).
    ``on_lost`` hears about a device that went away.
    """

    def __init__(
        self,
        device: Device | DeviceSpec = None,
        *,
        on_block: BlockSink | None = None,
        on_lost: Callable[[DeviceLost], None] | None = None,
        block_ms: int = BLOCK_MS,
        latency: float | str = "low",
        queue_blocks: int = 500,
        stream_factory: StreamFactory | None = None,
    ) -> None:
        super().__init__()
        self._kind = "input"
        sd: ModuleType | None = None
        if stream_factory is None:
            self.device: Device | None = _resolve(device, "input")
            sd = _sounddevice()
        else:
            self.device = device if isinstance(device, Device) else None
        self.blocks: queue.Queue[AudioBlock] = queue.Queue(maxsize=queue_blocks)
        self.dropped_blocks = 0
        self.overflows = 0
        """Callbacks that came too late to get every sample (the listener heard a gap)."""
        self.level_dbfs = SILENCE_DBFS
        """Level of the latest block, for a meter."""
        self._on_block = on_block
        self._on_lost = on_lost
        self._first = threading.Event()
        self._latency_s = 0.0
        rate = self._device_rate(sd)
        self.device_rate_hz = rate
        self._capture = Capture(rate, self._deliver, block_ms)
        factory = stream_factory or _default_input_factory
        kwargs: dict[str, Any] = {
            "samplerate": rate,
            "blocksize": max(1, round(rate * block_ms / 1000)),
            "channels": 1,
            "dtype": "float32",
            "latency": latency,
            "callback": self._callback,
            "finished_callback": self._finished,
        }
        if self.device is not None:
            kwargs["device"] = self.device.index
        self._open(lambda: factory(**kwargs))
        reported = getattr(self._stream, "latency", 0.0)
        self._latency_s = float(reported) if isinstance(reported, (int, float)) else 0.0

    def _device_rate(self, sd: ModuleType | None) -> int:
        """The device's own default rate; we resample to 16 kHz ourselves.

        Asking the ALSA ``pulse`` device for 16 kHz directly was measured to make a concurrent
        output stream underrun continuously, so we never ask PortAudio to convert.
        """
        del sd
        return self.device.default_sample_rate_hz if self.device else INPUT_SAMPLE_RATE_HZ

    def wait_first_block(self, timeout_s: float | None = None) -> bool:
        """Wait for the first microphone data (PulseAudio takes 1-2 s to deliver it)."""
        return self._first.wait(timeout_s)

    def time_s(self) -> float:
        """Current PortAudio stream time."""
        try:
            return float(self._stream.time)
        except Exception:
            return 0.0

    def _watching(self) -> bool:
        # PulseAudio takes 1-2 s to deliver the first microphone data: no stall before it.
        return self._first.is_set()

    def _callback(
        self, indata: npt.NDArray[np.float32], frames: int, time_info: CallbackTime, status: object
    ) -> None:
        self._last_callback = time.monotonic()
        if status is not None and getattr(status, "input_overflow", False):
            self.overflows += 1
        self._first.set()
        self._capture.feed(indata[:, 0], self._adc_time(frames, time_info))

    def _adc_time(self, frames: int, time_info: CallbackTime) -> float:
        """When the block's first sample was captured: PortAudio's word when it is plausible.

        Through the ALSA ``pulse`` device ``inputBufferAdcTime`` was measured 0.4-0.7 s
        before the callback although the audio arrived within ~60 ms. A plausible stamp lies
        within one block plus the stream latency before now; otherwise the arrival time
        minus one block is the best estimate: with it, the same sound played and recorded
        through a null sink got speaker (DAC) and microphone stamps within ~5 ms.
        """
        now = float(time_info.currentTime)
        latest = now - frames / self.device_rate_hz
        earliest = latest - self._latency_s
        reported = float(time_info.inputBufferAdcTime)
        return reported if earliest <= reported <= latest else latest

    def _deliver(self, block: AudioBlock) -> None:
        self.level_dbfs = block.level_dbfs
        if self._on_block is not None:
            self._on_block(block)
            return
        while True:
            try:
                self.blocks.put_nowait(block)
                return
            except queue.Full:
                try:
                    self.blocks.get_nowait()
                    self.dropped_blocks += 1
                except queue.Empty:
                    pass

    def _lost(self, error: DeviceLost) -> None:
        if self._on_lost is not None:
            self._on_lost(error)


class _DuplexHub:
    """One full-duplex PortAudio stream shared by an Input and an Output on the same device.

    The Output registers first (its half starts nothing), the Input second, which opens the
    real stream; it starts once both halves did and stops once both were closed.
    """

    def __init__(self, factory: StreamFactory) -> None:
        self._factory = factory
        self._out: dict[str, Any] = {}
        self._in: dict[str, Any] = {}
        self._stream: Stream | None = None
        self._started = 0
        self._open_halves = 2

    def output_factory(self, **kwargs: Any) -> Stream:
        self._out = kwargs
        return _DuplexHalf(self)

    def input_factory(self, **kwargs: Any) -> Stream:
        self._in = kwargs
        out, inp = self._out, kwargs
        if out["samplerate"] != inp["samplerate"]:
            raise ValueError(
                f"full duplex needs one rate, got {out['samplerate']} and {inp['samplerate']} Hz"
            )
        stream_kwargs: dict[str, Any] = {
            "samplerate": out["samplerate"],
            "blocksize": out["blocksize"],
            "channels": (inp["channels"], out["channels"]),
            "dtype": "float32",
            "latency": out["latency"],
            "callback": self._callback,
            "finished_callback": self._finished,
        }
        if "device" in out or "device" in inp:
            stream_kwargs["device"] = (inp.get("device"), out.get("device"))
        self._stream = self._factory(**stream_kwargs)
        return _DuplexHalf(self)

    def _callback(
        self,
        indata: npt.NDArray[np.float32],
        outdata: npt.NDArray[np.float32],
        frames: int,
        time_info: CallbackTime,
        status: object,
    ) -> None:
        self._out["callback"](outdata, frames, time_info, status)
        self._in["callback"](indata, frames, time_info, status)

    def _finished(self) -> None:
        self._out["finished_callback"]()
        self._in["finished_callback"]()

    def start(self) -> None:
        self._started += 1
        if self._started == 2 and self._stream is not None:
            self._stream.start()

    def release(self) -> None:
        self._open_halves -= 1
        if self._open_halves == 0 and self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop()
            with contextlib.suppress(Exception):
                self._stream.close()

    @property
    def time(self) -> float:
        return 0.0 if self._stream is None else float(self._stream.time)

    @property
    def active(self) -> bool:
        return self._stream is not None and bool(self._stream.active)


class _DuplexHalf:
    """What Input or Output sees of a shared duplex stream."""

    def __init__(self, hub: _DuplexHub) -> None:
        self._hub = hub
        self._released = False

    @property
    def time(self) -> float:
        return self._hub.time

    @property
    def active(self) -> bool:
        return self._hub.active

    def start(self) -> None:
        self._hub.start()

    def stop(self) -> None:
        self.close()

    def close(self) -> None:
        if not self._released:
            self._released = True
            self._hub.release()


def _default_duplex_factory(**kwargs: Any) -> Stream:
    _silence_alsa_messages()
    stream: Stream = _sounddevice().Stream(**kwargs)
    return stream


def open_duplex(
    input_device: Device | DeviceSpec = None,
    output_device: Device | DeviceSpec = None,
    *,
    on_block: BlockSink | None = None,
    on_lost: Callable[[DeviceLost], None] | None = None,
    on_event: EventSink | None = None,
    reference: BlockSink | None = None,
    single_stream: bool = False,
    stream_factory: StreamFactory | None = None,
) -> tuple[Input, Output]:
    """Microphone and speaker together; the speaker's blocks go to ``reference``.

    Two streams by default: one full-duplex PortAudio stream through the ALSA ``pulse``
    device was measured to stall (one callback in 2.5 s at low latency), and separate
    streams share one clock, so echo alignment loses nothing. ``single_stream`` uses one
    full-duplex stream when both directions are the same device (some hardware prefers
    it); ``stream_factory`` replaces sounddevice's ``Stream`` for it (tests).
    """
    fake = stream_factory is not None
    outgoing = output_device if fake else _resolve(output_device, "output")
    incoming = input_device if fake else _resolve(input_device, "input")
    same = outgoing == incoming or fake
    if single_stream and same:
        hub = _DuplexHub(stream_factory or _default_duplex_factory)
        output = Output(
            outgoing, on_event=on_event, reference=reference, stream_factory=hub.output_factory
        )
        try:
            microphone = Input(
                incoming, on_block=on_block, on_lost=on_lost, stream_factory=hub.input_factory
            )
        except BaseException:
            output.close()
            raise
        return microphone, output
    output = Output(outgoing, on_event=on_event, reference=reference)
    try:
        microphone = Input(incoming, on_block=on_block, on_lost=on_lost)
    except BaseException:
        output.close()
        raise
    return microphone, output


__all__ = [
    "BLOCK_MS",
    "DEFAULT_FADE_MS",
    "INPUT_SAMPLE_RATE_HZ",
    "OUTPUT_BLOCK_MS",
    "OUTPUT_LATENCY_S",
    "SWITCH_INTERVAL_S",
    "UNDERFLOW_TIMES_KEPT",
    "AudioBlock",
    "AudioUnavailable",
    "Capture",
    "Device",
    "DeviceLost",
    "Input",
    "Output",
    "PlaybackEvent",
    "PlaybackEventKind",
    "PlaybackQueue",
    "Probe",
    "fade_curve",
    "favour_audio_callbacks",
    "level_dbfs",
    "list_devices",
    "open_duplex",
    "pick_device",
    "probe_input",
    "probe_output",
    "refresh_devices",
]
