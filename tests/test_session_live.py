"""The live wiring without a sound server: echo reference, played sentences, status, faults."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
from audio_support import FakeStreams
from session_support import FakeRecord, FakeSounds, fake_compile, make_routine

from coach.audio import AudioBlock, Output, PlaybackEvent, PlaybackEventKind
from coach.live import (
    EchoReference,
    OutputSpeaker,
    PlayedSentences,
    SynthesizedSounds,
    run_loop,
)
from coach.session import Outcome, Session, SessionStatus, Sound, State, Where
from coach.status import StatusLine, describe, level_meter
from coach.timeline import Earcon, Leg, TimelineOptions


def block(pcm: np.ndarray, time_s: float, rate: int = 16_000) -> AudioBlock:
    return AudioBlock(pcm.astype(np.float32), rate, time_s, -20.0)


def test_echo_reference_lines_up_played_samples_with_microphone_time() -> None:
    reference = EchoReference(lead_ms=0)
    ramp = (np.arange(1600) / 1600.0 * 0.5).astype(np.float32)
    reference.add(block(ramp[:800], 10.0))
    reference.add(block(ramp[800:], 10.05))
    taken = reference.take(10.02, 320).astype(np.float64) / 32767.0
    expected = ramp[320:640]
    # The streaming resampler at 16 kHz -> 16 kHz passes samples through (small filter delay).
    assert np.max(np.abs(taken - expected)) < 0.02
    # Before anything was played and after the end: silence.
    early = EchoReference(lead_ms=0)
    early.add(block(ramp, 10.0))
    assert not early.take(9.0, 160).any()
    late = EchoReference(lead_ms=0)
    late.add(block(ramp, 10.0))
    assert not late.take(20.0, 160).any()


def test_echo_reference_keeps_time_across_an_underrun() -> None:
    reference = EchoReference(lead_ms=0)
    reference.add(block(np.full(160, 0.25), 1.0))
    reference.add(block(np.full(160, 0.5), 1.1))  # 90 ms missing between the blocks
    late = reference.take(1.1, 160).astype(np.float64) / 32767.0
    assert abs(float(np.median(late)) - 0.5) < 0.02


def test_echo_reference_says_once_when_what_it_hands_out_reaches_a_speaker_gap() -> None:
    reference = EchoReference(lead_ms=0)
    reference.add(block(np.full(320, 0.25), 1.0))
    reference.add(replace(block(np.full(320, 0.5), 1.02), after_gap=True))
    reference.add(block(np.full(320, 0.25), 1.04))
    reference.take(1.0, 320)
    assert not reference.crossed_gap()  # handed out up to the gap, not past it
    reference.take(1.02, 160)
    assert reference.crossed_gap()
    assert not reference.crossed_gap()  # said once
    reference.take(1.03, 480)
    assert not reference.crossed_gap()


def test_echo_reference_reads_on_through_jittery_block_times() -> None:
    reference = EchoReference(lead_ms=0)
    ramp = (np.arange(3200) / 3200.0 * 0.5).astype(np.float32)
    reference.add(block(ramp, 5.0))
    first = reference.take(5.0, 320)
    # The next block claims to start 3 ms late: jitter, not a gap; the stream reads on.
    second = reference.take(5.023, 320)
    joined = np.concatenate([first, second]).astype(np.float64) / 32767.0
    assert np.max(np.abs(np.diff(joined))) < 0.01
    assert reference.resyncs == 0


def test_echo_reference_follows_a_lasting_offset() -> None:
    reference = EchoReference(keep_s=10.0, resync_ms=20, judge_blocks=10, lead_ms=0)
    ramp = (np.arange(16_000) / 16_000.0 * 0.5).astype(np.float32)
    reference.add(block(ramp, 0.0))
    reference.take(0.0, 160)
    # From now on the microphone says its blocks start 50 ms later than the stream read.
    for index in range(1, 12):
        taken = reference.take(index * 0.01 + 0.05, 160)
    assert reference.resyncs == 1
    after = taken.astype(np.float64) / 32767.0
    expected = ramp[11 * 160 + 800]
    assert abs(after[0] - expected) < 0.01


def test_played_sentences_know_what_was_said_when_and_its_echo() -> None:
    played = PlayedSentences()
    played.on_event(PlaybackEvent(PlaybackEventKind.STARTED, 1, "Bend the knee.", 5.0))
    played.on_event(PlaybackEvent(PlaybackEventKind.FINISHED, 1, "Bend the knee.", 6.0))
    played.on_event(PlaybackEvent(PlaybackEventKind.STARTED, 2, None, 6.5))  # a tone
    assert played.text_at(5.5, 5.52) == "Bend the knee."
    assert played.text_at(6.3, 6.32) == "Bend the knee."  # still echoing in the room
    assert played.text_at(7.0, 7.02) is None
    assert played.text_at(4.0, 4.02) is None


def test_output_speaker_plays_interrupts_and_reports_idle() -> None:
    streams = FakeStreams()
    output = Output(sample_rate_hz=16_000, stream_factory=streams)
    speaker = OutputSpeaker(output)
    assert speaker.is_idle()
    speaker.play(Sound(np.full(1600, 0.5, dtype=np.float32), 16_000, "Hello."))
    speaker.play(
        Sound(np.full(1600, 0.5, dtype=np.float32), 16_000, "Safety."), uninterruptible=True
    )
    assert not speaker.is_idle()
    streams.made[0].pump(1)
    speaker.interrupt()
    written = streams.made[0].pump(40)[:, 0]
    # The first clip fades out; the uninterruptible one plays in full.
    assert np.count_nonzero(np.abs(written - 0.5) < 1e-6) >= 1600
    assert speaker.is_idle()
    output.close()


def test_synthesized_sounds_wrap_the_synthesizer_and_earcons() -> None:
    class Synth:
        sample_rate_hz = 22050

        def synthesize(self, text: str) -> object:
            class Phrase:
                pcm = np.zeros(2205, dtype=np.float32)
                sample_rate_hz = 22050

            return Phrase()

    sounds = SynthesizedSounds(Synth())  # type: ignore[arg-type]
    spoken = sounds.speech("Hello.")
    assert spoken.text == "Hello." and spoken.duration_ms == 100
    tone = sounds.tone(Earcon.HOLD_START)
    assert tone.text is None and tone.duration_ms == 250
    assert sounds.tone(Earcon.HOLD_START) is tone


def _status(**overrides: object) -> SessionStatus:
    values: dict[str, object] = {
        "state": State.RUNNING,
        "where": Where("lying", 0, "the lying glide", Leg.LEFT, 1, 3),
        "reps_per_side": 5,
        "hold_left_ms": 2400,
        "last_command": "NEXT",
        "pace": 0.8,
        "elapsed_ms": 1000,
        "question": None,
    }
    values.update(overrides)
    return SessionStatus(**values)  # type: ignore[arg-type]


def test_status_line_says_exercise_side_rep_hold_and_last_command() -> None:
    line = describe(_status())
    assert (
        line == "running | the lying glide | left leg | rep 3/5 | hold 3 s | pace 0.8 | heard NEXT"
    )
    assert level_meter(-30.0) == "[#####     ]"
    assert level_meter(None) == ""
    assert level_meter(-120.0) == "[          ]"


def test_without_a_terminal_the_status_is_logged_on_change_only() -> None:
    stream = io.StringIO()
    with StatusLine(stream) as status:
        assert not status.is_terminal
        status.update(_status(hold_left_ms=3000))
        status.update(_status(hold_left_ms=2000))  # only the countdown moved
        status.update(_status(where=Where("lying", 0, "the lying glide", Leg.LEFT, 1, 4)))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("coach: running | the lying glide") for line in lines)
    assert "rep 4/5" in lines[1]


def _session(output: Output, sounds: object = None) -> tuple[Session, FakeRecord]:
    record = FakeRecord()
    session = Session(
        make_routine(),
        TimelineOptions(),
        fake_compile,
        OutputSpeaker(output),
        sounds or FakeSounds(),  # type: ignore[arg-type]
        record,
    )
    return session, record


def test_a_lost_output_device_ends_the_session_journaled_without_a_traceback() -> None:
    streams = FakeStreams()
    output = Output(sample_rate_hz=16_000, stream_factory=streams)
    session, record = _session(output)
    streams.made[0].finished()  # PortAudio says the stream stopped: unplugged
    result = run_loop(session, output, None)
    assert result.outcome is Outcome.DEVICE_LOST
    assert record.outcome is Outcome.DEVICE_LOST
    assert result.problem is not None and "unplugged" in result.problem
    output.close()


def test_ctrl_c_ends_the_session_journaled() -> None:
    class Interrupting(FakeSounds):
        def speech(self, text: str) -> Sound:
            raise KeyboardInterrupt

    streams = FakeStreams()
    output = Output(sample_rate_hz=16_000, stream_factory=streams)
    session, record = _session(output, Interrupting())
    result = run_loop(session, output, None)
    assert result.interrupted
    assert record.outcome is Outcome.INTERRUPTED
    assert record.finished_calls == 1
    output.close()


def test_echo_reference_leads_the_microphone_so_echoes_come_after_it() -> None:
    reference = EchoReference(lead_ms=50)
    ramp = (np.arange(3200) / 3200.0 * 0.5).astype(np.float32)
    reference.add(block(ramp, 2.0))
    taken = reference.take(2.0, 160).astype(np.float64) / 32767.0
    assert abs(taken[0] - ramp[800]) < 0.01
