"""The echo delay measured from the signals, and the reference that waits for the speaker."""

from __future__ import annotations

import threading
import time

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

from coach.audio import AudioBlock
from coach.echo_delay import EchoDelayTracker, gcc_phat_lag
from coach.live import EchoReference
from coach.speech import Synthesizer
from coach.voices import load_voice

RATE = 16_000
MS = RATE // 1000
BLOCK = 20 * MS


def voice_like(seconds: float, seed: int = 0) -> npt.NDArray[np.float64]:
    """Noise shaped like speech: low-passed, in syllable-long bursts (a quarter of full scale)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")
    bursts = (np.sin(np.arange(n) * 2 * np.pi * 4 / RATE) > -0.3).astype(np.float64)
    return 0.25 * noise / np.max(np.abs(noise)) * bursts


def to_int16(x: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


class Room:
    """A played stream, its echo ``delay_ms`` later in the microphone, and a movable cursor
    standing in for EchoReference (what the tracker's corrections act on)."""

    def __init__(self, played: npt.NDArray[np.float64], delay_ms: int) -> None:
        self.played = played
        self.delay = delay_ms * MS
        self.cursor = 0  # where the reference handed out stands against the microphone
        self.position = 0

    def next_block(self) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
        start = self.position
        self.position += BLOCK

        def at(offset: int) -> npt.NDArray[np.float64]:
            index = np.arange(start, start + BLOCK) + offset
            out = np.zeros(BLOCK)
            ok = (index >= 0) & (index < len(self.played))
            out[ok] = self.played[index[ok]]
            return out

        mic = 0.3 * at(-self.delay) + 0.001 * np.random.default_rng(start).standard_normal(BLOCK)
        return to_int16(mic), to_int16(at(self.cursor))


def run(tracker: EchoDelayTracker, room: Room, seconds: float) -> list[int]:
    corrections = []
    for _ in range(int(seconds * 1000) // 20):
        correction = tracker.add(*room.next_block())
        if correction:
            room.cursor += correction
            corrections.append(correction)
    return corrections


def test_gcc_phat_finds_a_delayed_copy() -> None:
    ref = voice_like(1.0)
    mic = np.zeros_like(ref)
    mic[37 * MS :] = 0.2 * ref[: -37 * MS]
    lag, prominence = gcc_phat_lag(mic, ref, 300 * MS, -100 * MS)
    assert lag == 37 * MS
    assert prominence > 8


def test_a_usable_delay_is_kept_as_it_is() -> None:
    tracker, room = EchoDelayTracker(), Room(voice_like(6.0), delay_ms=55)
    assert run(tracker, room, 6.0) == []
    assert tracker.target == 55 * MS


def test_an_echo_arriving_too_soon_after_its_reference_is_moved_to_the_preferred_delay() -> None:
    tracker, room = EchoDelayTracker(preferred_ms=40), Room(voice_like(8.0), delay_ms=3)
    corrections = run(tracker, room, 8.0)
    assert corrections == [37 * MS]  # hand out later parts of the played stream
    assert tracker.lag is not None and abs(tracker.lag - 40 * MS) <= MS


def test_a_jump_in_the_echo_delay_is_undone() -> None:
    tracker, room = EchoDelayTracker(), Room(voice_like(12.0), delay_ms=60)
    assert run(tracker, room, 5.0) == []
    room.delay += 12 * MS  # an underflow: the speaker now plays 12 ms later
    corrections = run(tracker, room, 5.0)
    assert corrections == [-12 * MS]
    assert tracker.lag is not None and abs(tracker.lag - 60 * MS) <= MS


def test_after_a_speaker_gap_one_clear_measurement_undoes_the_jump_at_once() -> None:
    def ms_to_correct(told: bool) -> int:
        tracker, room = EchoDelayTracker(), Room(voice_like(12.0), delay_ms=60)
        assert run(tracker, room, 5.0) == []
        room.delay += 18 * MS  # the speaker fell behind by 18 ms (as in a live e2e run)
        for index in range(150):
            correction = tracker.add(*room.next_block(), after_gap=told and index == 0)
            if correction:
                assert correction == -18 * MS
                return index * 20
        raise AssertionError("never corrected")

    quick, usual = ms_to_correct(told=True), ms_to_correct(told=False)
    assert quick <= 60 + 400 + 100  # the echo's delay, the quick window, a little coach silence
    assert usual >= 1000  # two agreeing one-second measurements


def test_no_correction_while_the_coach_is_silent_or_the_microphone_hears_no_echo() -> None:
    silent = Room(np.zeros(RATE * 5), delay_ms=5)
    assert run(EchoDelayTracker(), silent, 5.0) == []
    headphones = Room(voice_like(5.0), delay_ms=5)
    tracker = EchoDelayTracker()
    for _ in range(250):
        _, ref = headphones.next_block()
        noise = to_int16(0.01 * np.random.default_rng(headphones.position).standard_normal(BLOCK))
        assert tracker.add(noise, ref) == 0
    assert tracker.target is None


def block(pcm: npt.NDArray[np.float64], time_s: float) -> AudioBlock:
    return AudioBlock(pcm.astype(np.float32), RATE, time_s, -20.0)


def test_the_reference_waits_for_the_speaker_to_render_what_the_microphone_asks_for() -> None:
    reference = EchoReference(lead_ms=0)
    reference.add(block(np.full(160, 0.25), 1.0))
    later = threading.Timer(0.05, lambda: reference.add(block(np.full(160, 0.5), 1.01)))
    later.start()
    try:
        taken = reference.take(1.0, 320, wait_s=5.0).astype(np.float64) / 32767
    finally:
        later.join()
    assert abs(float(np.median(taken[200:300])) - 0.5) < 0.02  # not a hole of silence


def test_without_waiting_the_reference_is_silence_where_nothing_was_rendered_yet() -> None:
    reference = EchoReference(lead_ms=0)
    reference.add(block(np.full(160, 0.25), 1.0))
    taken = reference.take(1.0, 320).astype(np.float64) / 32767
    assert not taken[200:].any()


def test_a_speaker_that_stopped_costs_one_wait_not_one_per_block() -> None:
    reference = EchoReference(lead_ms=0)
    reference.add(block(np.full(160, 0.25), 1.0))
    started = time.monotonic()
    reference.take(1.0, 320, wait_s=0.2)
    first = time.monotonic() - started
    started = time.monotonic()
    for index in range(10):
        reference.take(1.02 + index * 0.02, 320, wait_s=0.2)
    rest = time.monotonic() - started
    # One timed-out wait, then none until the speaker renders again (not a speed test:
    # ten more waits would take two whole seconds).
    assert first >= 0.2
    assert rest < 1.0


def coach_says(*texts: str) -> list[npt.NDArray[np.float64]]:
    """The coach's own voice (the live session's synthesizer) saying each text, at 16 kHz."""
    with Synthesizer(load_voice("calm")) as synthesizer:
        phrases = [synthesizer.synthesize(text) for text in texts]
    return [
        resample_poly(np.asarray(p.pcm, np.float64), RATE, p.sample_rate_hz) for p in phrases
    ]


def corrections_after_a_pause(jump_ms: int) -> list[tuple[int, int]]:
    """(ms after the coach spoke again, correction in ms): an echo settled at 86 ms, the
    coach silent for 1.2 s with the speaker's gap flagged in the silence (as between two
    bench_live sessions), the echo ``jump_ms`` later from then on, and a new sentence."""
    before, after = coach_says(
        "We will start slowly and gently with the leg resting on the floor and the knee "
        "bent, and we will only move as far as it feels comfortable.",
        "Welcome. Today's session: the benchmark.",
    )
    played = np.concatenate([before, np.zeros(int(1.2 * RATE)), after])
    tracker, room = EchoDelayTracker(), Room(played, delay_ms=86)
    assert run(tracker, room, len(before) / RATE) == []
    assert tracker.target == 86 * MS
    room.delay += jump_ms * MS
    out = []
    for index in range((int(1.2 * RATE) + len(after)) // BLOCK):
        correction = tracker.add(*room.next_block(), after_gap=index == 10)
        if correction:
            room.cursor += correction
            out.append((index * 20 + 20 - 1200, correction // MS))
    return out


def test_a_quick_measurement_waits_for_the_echo_of_the_coach_speaking_again() -> None:
    """The first blocks of a sentence after a pause hold the coach's voice but hardly any
    of its echo yet, and the correlation over them peaks anywhere. In a bench_live
    recording the reference was moved by 86 ms that way, 100 ms into the sentence,
    though the echo had not moved, and moved back 1.8 s later: for those 1.8 s the
    canceller's filter no longer fitted the echo."""
    assert corrections_after_a_pause(0) == []
    moved = corrections_after_a_pause(18)
    assert [c for _, c in moved] == [-18]
    # The echo's delay, a quarter of the quick window's reference playing, the voice's pauses.
    assert moved[0][0] <= 86 + 18 + 100 + 100
