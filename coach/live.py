"""The live session on real devices: speaker, microphone, listener, journal and the loop.

:class:`coach.session.Session` decides what happens; this module only connects it to
the world: sounds go to :class:`coach.audio.Output`, microphone blocks from
:class:`coach.audio.Input` go (with what the speaker played at the same moment, for echo
cancellation) through a :class:`coach.listen.Listener` on a worker thread, and the
resulting commands come back to the loop, which drives the session on a monotonic clock.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from coach.audio import (
    BLOCK_MS,
    INPUT_SAMPLE_RATE_HZ,
    AudioBlock,
    DeviceLost,
    Output,
    PlaybackEvent,
    PlaybackEventKind,
)
from coach.earcons import earcon
from coach.echo_delay import EchoDelayTracker
from coach.listen.commands import CommandEvent
from coach.listen.listener import Listener
from coach.listen_recording import ListenRecording
from coach.resample import StreamResampler
from coach.session import Outcome, Session, Sound
from coach.speech import Synthesizer
from coach.status import StatusLine
from coach.timeline import Earcon

_log = logging.getLogger(__name__)

LISTENER_NICE = -10
"""The listening thread's niceness where the system allows it (root, or CAP_SYS_NICE, e.g.
a systemd unit's ``AmbientCapabilities=CAP_SYS_NICE``): on a busy CPU, ahead of ordinary
work, as PulseAudio runs itself (-11). The live e2e test with one core kept busy, 3 runs
each (session 10): the listener's wait at the 12 commands, median 28 -> 22 ms, worst 143 ->
51 ms; PAIN -> silence at the speaker 510, 360, 270 -> 280, 250, 270 ms."""


def favour_this_thread(nice: int = LISTENER_NICE) -> bool:
    """Ask Linux to schedule the calling thread ahead of ordinary work; False where not
    allowed (or not Linux, where a thread id is not a process id): it runs as before."""
    if sys.platform != "linux":
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError:  # not allowed
        return False
    return True

LOOP_MS = 20
"""The loop wakes at least this often (to watch the speaker and the devices)."""
STALL_S = 3.0
"""A device that delivers no callback for this long counts as lost."""
REFERENCE_WAIT_S = 0.25
"""How long the listener waits for the speaker to render a block's echo reference."""
ECHO_TAIL_S = 0.6
"""After a sentence ends, its words may still be heard in the room for this long."""


def monotonic_ms() -> int:
    """The session clock: monotonic milliseconds."""
    return time.monotonic_ns() // 1_000_000


class OutputSpeaker:
    """The session's Speaker on a real output stream."""

    def __init__(self, output: Output) -> None:
        self.output = output

    def play(self, sound: Sound, *, uninterruptible: bool = False) -> None:
        """Queue ``sound``; its text is the tag, so the listener knows what is being said."""
        self.output.play(
            sound.pcm, sound.sample_rate_hz, uninterruptible=uninterruptible, tag=sound.text
        )

    def interrupt(self) -> None:
        """Fade out within one block; the safety message survives."""
        self.output.interrupt()

    def is_idle(self) -> bool:
        """True when nothing is playing or queued."""
        return self.output.idle()


class SynthesizedSounds:
    """The session's SoundBank: cached speech from the synthesizer, earcons made in code."""

    def __init__(self, synthesizer: Synthesizer) -> None:
        self.synthesizer = synthesizer
        self._tones: dict[Earcon, Sound] = {}

    def speech(self, text: str) -> Sound:
        """``text`` as spoken by the session's voice."""
        phrase = self.synthesizer.synthesize(text)
        return Sound(phrase.pcm, phrase.sample_rate_hz, text)

    def tone(self, kind: Earcon) -> Sound:
        """The earcon ``kind`` at the synthesizer's rate (so it needs no resampling twice)."""
        if kind not in self._tones:
            rate = self.synthesizer.sample_rate_hz
            self._tones[kind] = Sound(earcon(kind, rate), rate, None)
        return self._tones[kind]


class EchoReference:
    """What the speaker played, at 16 kHz, handed out in step with the microphone.

    The output stream hands over every block it writes with the time it reaches the DAC;
    the microphone's blocks carry the time they left the ADC on the same clock. Block
    times jitter by milliseconds, which would scramble the reference if each block were
    looked up on its own, so the reference is read as one continuous stream: aligned by
    time once, then advanced sample for sample, and re-aligned by time only when the
    median offset over ``judge_blocks`` blocks exceeds ``resync_ms`` (a stall of a
    second or more); finer alignment comes from the measured echo delay (:meth:`shift`).
    A tighter time-based rule did harm: while PulseAudio delivers the first microphone
    data in bursts, block times are estimates off by 100 ms and more, and re-aligning on
    them moved the reference away from the echo just as the canceller was learning it.

    The microphone side may ask for samples the speaker has not rendered yet (the lead
    reaches past what the output stream has written ahead); ``take`` then waits up to
    ``wait_s`` for them. Handing out silence instead punched a hole into every block's
    reference, and the canceller removed only 3-5 dB of the coach's voice live.
    """

    def __init__(
        self,
        keep_s: float = 12.0,
        resync_ms: int = 1000,
        judge_blocks: int = 50,
        lead_ms: int = 60,
    ) -> None:
        self._resampler: StreamResampler | None = None
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self._starved = False
        """A wait timed out (the speaker stopped): no more waiting until a block arrives."""
        self._keep = round(keep_s * INPUT_SAMPLE_RATE_HZ)
        self._ring = np.zeros(self._keep, dtype=np.float32)
        """The last ``keep_s`` of played samples; absolute index ``i`` sits at ``i % keep``
        (a ring: the audio thread appends without copying the whole history)."""
        self._end = 0
        """Absolute index one past the last sample added."""
        self._start_s = 0.0
        """Stream time of the first sample ever added (sample index 0)."""
        self._cursor: int | None = None
        """Absolute index of the next sample to hand to the microphone side."""
        self._shifted = 0
        """Samples the measured echo delay moved the stream from where time put it."""
        self._resync = resync_ms * INPUT_SAMPLE_RATE_HZ // 1000
        self._drift: deque[int] = deque(maxlen=judge_blocks)
        """Recent (time-based position - stream position) differences, in samples."""
        self.resyncs = 0
        """How often the alignment was corrected by time (diagnostics)."""
        self.gaps = 0
        """Holes in the played stream (the speaker fell behind), filled with silence."""
        self._stall = INPUT_SAMPLE_RATE_HZ // 50
        """A hole longer than this (one 20 ms block) between output blocks is real."""
        self._gaps: deque[int] = deque()
        """Absolute indices where the speaker played on after an underflow (not yet handed
        out): the echo may sit at a new delay from there (``AudioBlock.after_gap``)."""
        self._gap_handed = False
        self._lead_s = lead_ms / 1000
        """The reference is handed over this much ahead of the time the microphone claims:
        the canceller's filter covers echoes that come after the reference, never before,
        and device time stamps are only good to tens of ms."""

    def add(self, block: AudioBlock) -> None:
        """A block the speaker played (output audio thread: quick)."""
        first = self._resampler is None
        if self._resampler is None:
            self._resampler = StreamResampler(block.sample_rate_hz, INPUT_SAMPLE_RATE_HZ)
        pcm = self._resampler.process(np.asarray(block.pcm, dtype=np.float32))
        with self._lock:
            if first:
                self._start_s = block.time_s
            else:
                end = self._end
                gap = round((block.time_s - self._start_s) * INPUT_SAMPLE_RATE_HZ) - end
                # Blocks are written back to back: what was rendered is what was played,
                # unless the stream fell behind; a hole of a whole block or more is
                # filled with silence (smaller differences are time-stamp jitter).
                if gap > self._stall:
                    self.gaps += 1
                    self._write(np.zeros(min(gap, self._keep), np.float32))
            if block.after_gap:
                self._gaps.append(self._end)
            self._write(pcm)
            self._starved = False
            self._added.notify_all()

    def _write(self, pcm: npt.NDArray[np.float32]) -> None:
        """Append ``pcm`` (at most ``keep`` samples) to the ring (lock held)."""
        self._ring[np.arange(self._end, self._end + len(pcm)) % self._keep] = pcm
        self._end += len(pcm)

    def shift(self, n_samples: int) -> None:
        """Hand out the played stream ``n_samples`` later (negative: earlier) from now on:
        a measured echo delay (:mod:`coach.echo_delay`) corrects the time-based alignment."""
        with self._lock:
            self._shifted += n_samples
            if self._cursor is not None:
                self._cursor += n_samples
                self._drift.clear()

    def take(self, time_s: float, n_samples: int, wait_s: float = 0.0) -> npt.NDArray[np.int16]:
        """The next ``n_samples`` played samples for a microphone block captured at ``time_s``
        (silence where nothing was played), waiting up to ``wait_s`` for the speaker to
        render the last of them."""
        out = np.zeros(n_samples, dtype=np.float32)
        with self._lock:
            if self._resampler is not None:
                since_start_s = time_s + self._lead_s - self._start_s
                expected = round(since_start_s * INPUT_SAMPLE_RATE_HZ) + self._shifted
                if self._cursor is None:
                    self._cursor = expected
                self._drift.append(expected - self._cursor)
                if len(self._drift) == self._drift.maxlen:
                    # Block times jitter by tens of ms: only a lasting offset (the median
                    # over ~1 s) moves the stream, so the canceller's filter stays valid.
                    offset = int(np.median(self._drift))
                    if abs(offset) > self._resync:
                        self._cursor += offset
                        self.resyncs += 1
                        self._drift.clear()
                end = self._cursor + n_samples
                if wait_s > 0 and not self._starved:
                    ready = self._added.wait_for(lambda: self._end >= end, timeout=wait_s)
                    self._starved = not ready
                wanted = np.arange(self._cursor, self._cursor + n_samples)
                kept = (wanted >= max(self._end - self._keep, 0)) & (wanted < self._end)
                out[kept] = self._ring[wanted[kept] % self._keep]
                self._cursor += n_samples
                while self._gaps and self._gaps[0] < self._cursor:
                    self._gaps.popleft()
                    self._gap_handed = True
        return np.clip(np.round(out * 32767.0), -32768, 32767).astype(np.int16)

    def crossed_gap(self) -> bool:
        """Whether what ``take`` handed out since the last call reached a point where the
        speaker fell behind (an underflow). A gap under one block need not show in the
        block times, so the reference may read on while the echo comes that much later
        (18 ms in a live e2e run), and the canceller's filter no longer fits: the echo
        delay is then measured again at once (``EchoDelayTracker.add``'s ``after_gap``)."""
        with self._lock:
            crossed, self._gap_handed = self._gap_handed, False
            return crossed


@dataclass
class _Spoken:
    text: str
    start_s: float
    end_s: float | None = None


class PlayedSentences:
    """Which sentence the speaker was saying when (from the output's playback events)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spoken: deque[_Spoken] = deque(maxlen=32)
        self._by_id: dict[int, _Spoken] = {}

    def on_event(self, event: PlaybackEvent) -> None:
        """Output audio thread: a clip started or stopped."""
        with self._lock:
            if event.kind is PlaybackEventKind.STARTED and isinstance(event.tag, str):
                spoken = _Spoken(event.tag, event.time_s)
                self._spoken.append(spoken)
                self._by_id[event.item_id] = spoken
            elif event.kind in (PlaybackEventKind.FINISHED, PlaybackEventKind.INTERRUPTED):
                spoken_or_none = self._by_id.pop(event.item_id, None)
                if spoken_or_none is not None:
                    spoken_or_none.end_s = event.time_s

    def text_at(self, start_s: float, end_s: float) -> str | None:
        """The sentence audible (or still echoing) between ``start_s`` and ``end_s``."""
        with self._lock:
            for spoken in reversed(self._spoken):
                ends = spoken.end_s if spoken.end_s is not None else float("inf")
                if spoken.start_s <= end_s and ends + ECHO_TAIL_S >= start_s:
                    return spoken.text
        return None


class Hearing:
    """Microphone blocks through the listener on a worker thread; commands come out.

    The microphone opens before the recogniser has loaded (:class:`VoiceControl`): its
    blocks wait in a backlog of up to ``backlog_s`` and are worked through once the
    listener is attached. So the echo canceller has learnt the room from the coach's
    first sentences by the time commands are judged (a fresh canceller lets the coach's
    own voice through for a second or two), and a command said while the model loads is
    still heard, a little late.
    """

    def __init__(
        self,
        listener: Listener | None,
        reference: EchoReference,
        played: PlayedSentences,
        backlog_s: float = 10.0,
        recording: ListenRecording | None = None,
    ) -> None:
        self.listener = listener
        self.reference = reference
        self.played = played
        self.recording = recording
        """Where what the listener got is kept (``coach run --record-audio``), if anywhere."""
        self.delay = EchoDelayTracker()
        self.commands: queue.Queue[CommandEvent] = queue.Queue()
        self.level_dbfs: float | None = None
        self.lost: DeviceLost | None = None
        self.failed: str | None = None
        self.lag_ms = 0
        """Longest wait of a microphone block before the listener took it (a slow CPU
        shows), counting only blocks that arrived once the listener was attached."""
        self.dropped_blocks = 0
        self._attached = threading.Event()
        self._attached_s = 0.0
        if listener is not None:
            self._attached.set()
        self._stop = threading.Event()
        backlog = max(1, round(backlog_s * 1000 / BLOCK_MS))  # microphone blocks
        self._blocks: queue.Queue[tuple[AudioBlock, float]] = queue.Queue(maxsize=backlog)
        self._thread = threading.Thread(target=self._work, name="coach-listen", daemon=True)
        self._thread.start()

    def attach(self, listener: Listener) -> None:
        """The recogniser is ready: work through the backlog, then keep up."""
        self.listener = listener
        self._attached_s = time.monotonic()
        self._attached.set()

    def on_block(self, block: AudioBlock) -> None:
        """Input audio thread: hand the block over (never block the audio thread)."""
        self.level_dbfs = block.level_dbfs
        item = (block, time.monotonic())
        while True:
            try:
                self._blocks.put_nowait(item)
                return
            except queue.Full:
                # The oldest block goes: the newest may hold a "pain".
                try:
                    self._blocks.get_nowait()
                    self.dropped_blocks += 1
                except queue.Empty:
                    pass

    def on_lost(self, error: DeviceLost) -> None:
        """The microphone went away."""
        self.lost = error

    def close(self) -> None:
        """Stop the worker (and finish the recording, if any)."""
        self._stop.set()
        self._attached.set()
        self._thread.join(timeout=2.0)
        if self.recording is not None:
            self.recording.close()

    def _work(self) -> None:
        if not favour_this_thread():
            _log.debug("the listening thread runs at normal priority (not allowed to raise it)")
        self._attached.wait()
        while not self._stop.is_set():
            try:
                block, arrived_s = self._blocks.get(timeout=0.1)
            except queue.Empty:
                continue
            listener = self.listener
            if listener is None:
                return
            if arrived_s >= self._attached_s:
                waited_ms = round((time.monotonic() - arrived_s) * 1000)
                self.lag_ms = max(self.lag_ms, waited_ms)
            try:
                n = len(block.pcm)
                reference = self.reference.take(block.time_s, n, REFERENCE_WAIT_S)
                gap = self.reference.crossed_gap()
                if gap:
                    _log.info("the speaker fell behind: measuring the echo delay again")
                    listener.speaker_gap()
                    if self.recording is not None:
                        self.recording.speaker_gap()
                correction = self.delay.add(block.pcm, reference, after_gap=gap)
                if correction:
                    self.reference.shift(correction)
                    listener.reference_moved(correction)
                    if self.recording is not None:
                        self.recording.reference_moved(correction)
                    moved_ms = correction * 1000 // INPUT_SAMPLE_RATE_HZ
                    _log.info("echo delay: moved the reference by %+d ms", moved_ms)
                elif (
                    not self.delay.measuring_gap
                    and listener.gap_measured()  # a held canceller catches up
                    and self.recording is not None
                ):
                    self.recording.gap_measured()
                end_s = block.time_s + n / INPUT_SAMPLE_RATE_HZ
                text = self.played.text_at(block.time_s, end_s)
                if self.recording is not None:
                    self.recording.write(block.pcm, reference, text)
                for event in listener.feed(block.pcm, reference, text):
                    self.commands.put(event)
                    if self.recording is not None:
                        lag_ms = round((time.monotonic() - arrived_s) * 1000)
                        self.recording.heard(event, lag_ms)
            except Exception as err:  # a recognizer crash must not take the session down
                _log.exception("listener failed")
                self.failed = f"the speech recogniser stopped: {err}"
                return


class VoiceControl:
    """Voice control being prepared in the background (loading a model takes seconds).

    ``load`` builds the listener (and says which engine) on a worker thread. The loop
    calls :meth:`poll`: the first call opens the microphone at once (on the loop's
    thread: PortAudio streams are opened from one thread), so what it hears while the
    model loads is kept (see :class:`Hearing`); once the listener is ready it is
    attached and the :class:`Hearing` handed back.
    """

    def __init__(
        self,
        load: Callable[[], tuple[Listener, str]],
        open_microphone: Callable[[Hearing], object],
        reference: EchoReference,
        played: PlayedSentences,
        recording: ListenRecording | None = None,
    ) -> None:
        self.reference = reference
        self.played = played
        self.recording = recording
        self.hearing: Hearing | None = None
        self.ready = False
        self.failure: str | None = None
        self.microphone: object | None = None
        self.description = ""
        self._open_microphone = open_microphone
        self._listener: Listener | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._load, args=(load,), name="coach-model", daemon=True
        )

    def start(self) -> None:
        """Start loading (once; later calls do nothing). ``coach run`` starts it before the
        speaker opens, so an engine that holds the interpreter lock while it loads does not
        starve the speaker's first blocks; the loop starts it otherwise."""
        if self._thread.ident is None:
            self._thread.start()

    def _load(self, load: Callable[[], tuple[Listener, str]]) -> None:
        try:
            self._listener, self.description = load()
        except Exception as err:  # CoachError or a crash inside the engine: run without
            self.failure = getattr(err, "message", None) or str(err) or type(err).__name__
        finally:
            self._done.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Start loading if needed and wait for it (or its failure); False on timeout."""
        self.start()
        return self._done.wait(timeout_s)

    def poll(self) -> Hearing | str | None:
        """The Hearing once ready, a failure message if it failed, else None (still loading)."""
        if self.ready:
            return self.hearing
        if self.failure is not None:
            return self.failure
        if self.hearing is None:
            hearing = Hearing(None, self.reference, self.played, recording=self.recording)
            try:
                self.microphone = self._open_microphone(hearing)
            except Exception as err:
                hearing.close()
                self.failure = getattr(err, "message", None) or str(err)
                return self.failure
            self.hearing = hearing
        if not self._done.is_set():
            return None
        if self.failure is not None:
            self.close()  # no recogniser: free the microphone now
            return self.failure
        assert self._listener is not None
        self.hearing.attach(self._listener)
        self.ready = True
        return self.hearing

    def close(self) -> None:
        """Stop the microphone and the listener thread."""
        close = getattr(self.microphone, "close", None)
        if callable(close):
            close()
        self.microphone = None
        if self.hearing is not None:
            self.hearing.close()


@dataclass
class LoopResult:
    """How the live loop ended."""

    outcome: Outcome | None
    problem: str | None = None
    """A device problem to tell the user about (the session was journaled)."""
    interrupted: bool = False
    """Ended by Ctrl-C / SIGTERM."""
    voice_failure: str | None = None
    """Why voice control did not start, if it did not."""
    events: list[CommandEvent] = field(default_factory=list)
    first_sound_ms: int | None = None
    """Session clock time when the first sound was queued."""


MIC_LOST = (
    "I can no longer hear you: the microphone stopped working. "
    "We'll stop here for today. Rest well."
)
RECOGNISER_LOST = "Voice control has stopped working, so just follow along from here."
VOICE_FAILED = (
    "Voice control could not start, so it is off today. Just follow along, "
    "and stop whenever you need to."
)


def run_loop(
    session: Session,
    output: Output,
    voice: VoiceControl | None,
    status: StatusLine | None = None,
    *,
    clock: Callable[[], int] = monotonic_ms,
    commands: queue.Queue[CommandEvent] | None = None,
) -> LoopResult:
    """Drive ``session`` until it ends; Ctrl-C and lost devices end it cleanly, journaled.

    Commands come from ``voice`` once it is ready, else from ``commands`` (benchmarks).
    """
    result = LoopResult(outcome=None)
    hearing: Hearing | None = None
    voice_settled = voice is None
    mic_lost_said = False
    recogniser_lost_said = False
    heard_elsewhere: queue.Queue[CommandEvent] = commands if commands is not None else queue.Queue()
    try:
        session.start(clock())
        wake = session.tick(clock())
        if voice is not None:
            voice.start()
        while not session.ended:
            now = clock()
            timeout_ms = LOOP_MS if wake is None else max(0, min(LOOP_MS, wake - now))
            source = hearing.commands if hearing is not None else heard_elsewhere
            events: list[CommandEvent] = []
            try:
                events.append(source.get(timeout=timeout_ms / 1000))
                while True:
                    events.append(source.get_nowait())
            except queue.Empty:
                pass
            output.check(stall_s=STALL_S)
            now = clock()
            if events:
                result.events.extend(events)
                session.on_commands(events, now)
            if not voice_settled and voice is not None:
                ready = voice.poll()
                if isinstance(ready, Hearing):
                    hearing, voice_settled = ready, True
                    if status is not None:
                        status.message(f"coach: voice control ready: {voice.description}")
                elif isinstance(ready, str):
                    voice_settled = True
                    result.voice_failure = ready
                    session.stop_listening(now, VOICE_FAILED)
            if hearing is not None and hearing.lost is not None and not mic_lost_said:
                mic_lost_said = True
                result.problem = f"{hearing.lost.message}; the session was ended and journaled"
                session.end(now, Outcome.DEVICE_LOST, MIC_LOST)
            if hearing is not None and hearing.failed and not recogniser_lost_said:
                recogniser_lost_said = True
                result.voice_failure = hearing.failed
                session.stop_listening(now, RECOGNISER_LOST)
            wake = session.tick(now)
            if result.first_sound_ms is None and not output.idle():
                result.first_sound_ms = now
            if status is not None:
                status.update(
                    session.status(now), hearing.level_dbfs if hearing is not None else None
                )
    except DeviceLost as err:
        session.abort(clock(), Outcome.DEVICE_LOST, err.message)
        result.problem = f"{err.message}; the session was stopped and journaled"
    except KeyboardInterrupt:
        session.abort(clock(), Outcome.INTERRUPTED, "stopped from the keyboard")
        result.interrupted = True
    result.outcome = session.outcome
    return result
