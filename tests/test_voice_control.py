"""Voice control start-up: the microphone opens before the recogniser is loaded, and what it
hears meanwhile is worked through once it is (fakes at the device boundary only)."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

from coach.audio import AudioBlock
from coach.listen.commands import Command, CommandEvent
from coach.live import EchoReference, Hearing, PlayedSentences, VoiceControl, favour_this_thread

RATE = 16_000


class RecordingListener:
    """Stands in for coach.listen.Listener: remembers what it was fed."""

    def __init__(self, pain_at_block: int | None = None) -> None:
        self.fed: list[int] = []
        self.pain_at_block = pain_at_block
        self.moved = 0
        self.told: list[tuple[str, int]] = []
        """What the Hearing told it about speaker gaps, and before which block."""

    def feed(self, mic: Any, reference: Any, text: Any) -> list[CommandEvent]:
        self.fed.append(int(mic[0]))
        if len(self.fed) - 1 == self.pain_at_block:
            return [CommandEvent(Command.PAIN, "pain", 1.0, 0, 0)]
        return []

    def reference_moved(self, correction: int | None = None) -> None:
        self.moved += 1

    def speaker_gap(self) -> None:
        self.told.append(("gap", len(self.fed)))

    def gap_measured(self) -> bool:
        self.told.append(("measured", len(self.fed)))
        return False


def mic_block(index: int) -> AudioBlock:
    pcm = np.full(320, index, dtype=np.int16)
    return AudioBlock(pcm, RATE, 100.0 + index * 0.02, -30.0)


def wait_for(condition: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_blocks_heard_before_the_listener_is_ready_are_worked_through_in_order() -> None:
    hearing = Hearing(None, EchoReference(), PlayedSentences())
    try:
        for index in range(50):
            hearing.on_block(mic_block(index))
        listener = RecordingListener(pain_at_block=10)
        hearing.attach(listener)  # type: ignore[arg-type]
        assert wait_for(lambda: len(listener.fed) == 50)
        assert listener.fed == list(range(50))
        # A "pain" said while the model loaded is still reported.
        assert hearing.commands.get(timeout=1.0).command is Command.PAIN
        # Waiting in the backlog is not the listener falling behind.
        assert hearing.lag_ms < 500
    finally:
        hearing.close()


def test_a_full_backlog_keeps_the_newest_blocks() -> None:
    hearing = Hearing(None, EchoReference(), PlayedSentences(), backlog_s=0.2)  # 10 blocks
    try:
        for index in range(25):
            hearing.on_block(mic_block(index))
        assert hearing.dropped_blocks == 15
        listener = RecordingListener()
        hearing.attach(listener)  # type: ignore[arg-type]
        assert wait_for(lambda: len(listener.fed) == 10)
        assert listener.fed == list(range(15, 25))
    finally:
        hearing.close()


class FakeMicrophone:
    def __init__(self, hearing: Hearing) -> None:
        self.hearing = hearing
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_the_microphone_opens_at_the_first_poll_and_the_listener_joins_when_loaded() -> None:
    loaded = threading.Event()
    listener = RecordingListener()
    opened: list[FakeMicrophone] = []

    def load() -> tuple[Any, str]:
        loaded.wait(5.0)
        return listener, "a fake engine"

    def open_microphone(hearing: Hearing) -> FakeMicrophone:
        opened.append(FakeMicrophone(hearing))
        return opened[-1]

    voice = VoiceControl(load, open_microphone, EchoReference(), PlayedSentences())
    try:
        voice.start()
        assert voice.poll() is None  # still loading ...
        assert len(opened) == 1  # ... but already listening
        opened[0].hearing.on_block(mic_block(7))
        loaded.set()
        assert wait_for(lambda: voice.poll() is not None)
        hearing = voice.poll()
        assert isinstance(hearing, Hearing) and hearing is opened[0].hearing
        assert wait_for(lambda: listener.fed == [7])
        assert len(opened) == 1
    finally:
        voice.close()
    assert opened[0].closed


def test_a_recogniser_that_fails_to_load_frees_the_microphone() -> None:
    opened: list[FakeMicrophone] = []

    def load() -> tuple[Any, str]:
        raise RuntimeError("model folder is empty")

    def open_microphone(hearing: Hearing) -> FakeMicrophone:
        opened.append(FakeMicrophone(hearing))
        return opened[-1]

    voice = VoiceControl(load, open_microphone, EchoReference(), PlayedSentences())
    voice.start()
    voice.wait(5.0)
    assert voice.poll() == "model folder is empty"
    # The first poll found the load already failed: no microphone was kept open.
    assert all(microphone.closed for microphone in opened)
    voice.close()


def test_a_measured_delay_is_not_undone_by_the_time_based_alignment() -> None:
    reference = EchoReference(lead_ms=0, resync_ms=40, judge_blocks=5)
    ramp = (np.arange(RATE * 2) / (RATE * 2) * 0.5).astype(np.float32)
    reference.add(AudioBlock(ramp, RATE, 0.0, -20.0))
    reference.take(0.0, 320)
    reference.shift(-RATE // 10)  # the echo delay tracker: 100 ms earlier
    for index in range(1, 12):
        taken = reference.take(index * 0.02, 320)
    assert reference.resyncs == 0
    expected = ramp[12 * 320 - RATE // 10]
    assert abs(taken[0] / 32767 - expected) < 0.01


class GapWitness:
    """Stands in for the EchoDelayTracker: remembers which blocks came after a speaker gap."""

    def __init__(self) -> None:
        self.after_gap: list[bool] = []
        self.measuring_gap = False

    def add(self, mic: Any, ref: Any, after_gap: bool = False) -> int:
        self.after_gap.append(after_gap)
        self.measuring_gap = after_gap  # measured at once by the next block
        return 0


def test_the_echo_delay_is_told_of_a_speaker_gap_with_the_block_that_reaches_it() -> None:
    reference = EchoReference(lead_ms=0)
    for index in range(10):
        played = np.full(320, 0.25, dtype=np.float32)
        # The speaker underflowed before its sixth block: the sixth microphone block gets it.
        reference.add(AudioBlock(played, RATE, 100.0 + index * 0.02, -20.0, after_gap=index == 5))
    listener = RecordingListener()
    hearing = Hearing(listener, reference, PlayedSentences())  # type: ignore[arg-type]
    witness = GapWitness()
    hearing.delay = witness  # type: ignore[assignment]
    try:
        for index in range(10):
            hearing.on_block(mic_block(index))
        assert wait_for(lambda: len(listener.fed) == 10)
    finally:
        hearing.close()
    assert witness.after_gap == [index == 5 for index in range(10)]
    # The listener too, before the same block (its canceller holds), and it hears when the
    # echo delay has been measured again (its canceller catches up).
    measured = [at for kind, at in listener.told if kind == "measured"]
    assert [at for kind, at in listener.told if kind == "gap"] == [5]
    assert 5 not in measured and 6 in measured


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")
def test_favouring_a_thread_changes_that_thread_alone() -> None:
    # +5 (lower priority) is allowed to anyone; the listener asks for -10 the same way.
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, Any] = {}

    def work() -> None:
        seen["favoured"] = favour_this_thread(own + 5)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen == {"favoured": True, "nice": own + 5}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
