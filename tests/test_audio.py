"""Audio layer with fake streams: block size, queue order, interruption, reference, devices."""

from __future__ import annotations

import subprocess
import sys
from math import gcd
from types import SimpleNamespace

import numpy as np
import pytest
from audio_support import FakeStreams, tone
from scipy.signal import resample_poly

from coach.audio import (
    INPUT_SAMPLE_RATE_HZ,
    OUTPUT_LATENCY_S,
    SWITCH_INTERVAL_S,
    UNDERFLOW_TIMES_KEPT,
    AudioBlock,
    AudioUnavailable,
    Device,
    DeviceLost,
    Input,
    Output,
    PlaybackEvent,
    PlaybackEventKind,
    fade_curve,
    favour_audio_callbacks,
    level_dbfs,
    open_duplex,
    pick_device,
)
from coach.errors import CoachError
from coach.resample import StreamResampler, lowpass_taps, resample, resampled_length

RATE = 48_000
BLOCK = RATE // 100  # OUTPUT_BLOCK_MS = 10 ms
# A 440 Hz sine at amplitude 0.5 moves at most 0.029 per sample at 48 kHz; a cut would be 0.5.
MAX_SMOOTH_STEP = 0.035

Kind = PlaybackEventKind


Made = tuple[Output, FakeStreams, list[PlaybackEvent], list[AudioBlock]]


def make_output(**kwargs: object) -> Made:
    streams = FakeStreams()
    events: list[PlaybackEvent] = []
    reference: list[AudioBlock] = []
    output = Output(
        sample_rate_hz=RATE,
        stream_factory=streams,
        on_event=events.append,
        reference=reference.append,
        **kwargs,  # type: ignore[arg-type]
    )
    return output, streams, events, reference


def kinds(events: list[PlaybackEvent]) -> list[tuple[Kind, object]]:
    return [(e.kind, e.tag) for e in events]


def test_output_opens_a_started_mono_stream_with_short_blocks() -> None:
    output, streams, _, reference = make_output()
    stream = streams.last
    assert stream.started
    assert stream.kwargs["blocksize"] == BLOCK
    assert stream.kwargs["channels"] == 1
    assert stream.kwargs["samplerate"] == RATE
    written = stream.pump(3)
    assert written.shape == (3 * BLOCK, 1)
    assert [len(b.pcm) for b in reference] == [BLOCK] * 3
    assert np.all(written == 0.0)  # idle means silence, never garbage
    output.close()
    assert stream.closed


def test_output_asks_for_its_latency_and_counts_underflows_with_their_times() -> None:
    output, streams, _, _ = make_output()
    stream = streams.last
    assert stream.kwargs["latency"] == OUTPUT_LATENCY_S
    stream.pump(2)
    stream.pump(1, status=SimpleNamespace(output_underflow=True))
    stream.pump(3, status=SimpleNamespace(output_underflow=False))
    assert output.underflows == 1
    assert len(output.underflow_times_s) == 1 and output.underflow_times_s[0] >= 0.0
    stream.pump(UNDERFLOW_TIMES_KEPT + 5, status=SimpleNamespace(output_underflow=True))
    assert output.underflows == UNDERFLOW_TIMES_KEPT + 6
    assert len(output.underflow_times_s) == UNDERFLOW_TIMES_KEPT  # bounded
    assert output.underflow_times_s == sorted(output.underflow_times_s)
    output.close()


def test_the_reference_block_after_an_underflow_says_the_speaker_fell_behind() -> None:
    output, streams, _, reference = make_output()
    stream = streams.last
    stream.pump(2)
    stream.pump(1, status=SimpleNamespace(output_underflow=True))
    stream.pump(2, status=SimpleNamespace(output_underflow=False))
    assert [block.after_gap for block in reference] == [False, False, True, False, False]
    output.close()


def test_favour_audio_callbacks_shortens_the_switch_interval_and_restores_it() -> None:
    before = sys.getswitchinterval()
    with favour_audio_callbacks():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        assert before > SWITCH_INTERVAL_S
    assert sys.getswitchinterval() == pytest.approx(before)
    with pytest.raises(KeyboardInterrupt), favour_audio_callbacks():
        raise KeyboardInterrupt  # Ctrl-C mid-session
    assert sys.getswitchinterval() == pytest.approx(before)


def test_clips_play_in_queue_order_with_start_and_finish_events() -> None:
    output, streams, events, _ = make_output()
    a = np.full(1500, 0.25, dtype=np.float32)
    b = np.full(700, -0.5, dtype=np.float32)
    assert output.idle()
    output.play(a, RATE, tag="a")
    output.play(b, RATE, tag="b")
    assert not output.idle()
    assert output.pending() == 2
    written = streams.last.pump(6)[:, 0]
    expected = np.zeros(6 * BLOCK, dtype=np.float32)
    expected[:1500] = 0.25
    expected[1500:2200] = -0.5
    np.testing.assert_array_equal(written, expected)
    assert kinds(events) == [
        (Kind.STARTED, "a"),
        (Kind.FINISHED, "a"),
        (Kind.STARTED, "b"),
        (Kind.FINISHED, "b"),
    ]
    first_dac = 100.0 + streams.last.dac_delay_s
    assert events[0].time_s == pytest.approx(first_dac)
    # b starts at the very sample a finishes; times are DAC times of those samples.
    assert events[1].time_s == pytest.approx(first_dac + 1500 / RATE)
    assert events[2].time_s == pytest.approx(events[1].time_s)
    assert events[3].time_s == pytest.approx(first_dac + 2200 / RATE)
    assert output.idle()
    assert output.wait_idle(0)
    assert list(iter_queue(output)) == events


def iter_queue(output: Output) -> list[PlaybackEvent]:
    got = []
    while not output.events.empty():
        got.append(output.events.get_nowait())
    return got


def test_interrupt_fades_out_within_30ms_without_a_click() -> None:
    output, streams, events, _ = make_output()
    output.play(tone(440, 2000, RATE), RATE, tag="speech")
    before = streams.last.pump(5)[:, 0]
    output.interrupt()
    after = streams.last.pump(8)[:, 0]
    loud = np.flatnonzero(np.abs(after) > 1e-6)
    assert loud.size > 0, "the fade itself should still be audible"
    silent_after_ms = 1000 * (loud[-1] + 1) / RATE
    assert silent_after_ms <= 30
    whole = np.concatenate([before, after])
    assert np.max(np.abs(np.diff(whole))) <= MAX_SMOOTH_STEP
    assert kinds(events) == [(Kind.STARTED, "speech"), (Kind.INTERRUPTED, "speech")]
    silent_at = 100.0 + 0.06 + (5 * BLOCK + loud[-1] + 1) / RATE
    assert events[1].time_s == pytest.approx(silent_at, abs=2 / RATE)
    assert output.idle()


def test_a_hard_cut_would_click_so_the_click_check_means_something() -> None:
    signal = np.concatenate([tone(440, 100, RATE), np.zeros(100, np.float32)])
    cut = signal.copy()
    cut[len(cut) // 3 :] = 0.0
    assert np.max(np.abs(np.diff(cut))) > MAX_SMOOTH_STEP


def test_fade_curve_is_a_raised_cosine_ending_at_zero() -> None:
    curve = fade_curve(960)
    assert curve[0] == pytest.approx(1.0, abs=1e-4)
    assert curve[-1] == 0.0
    assert np.all(np.diff(curve) <= 0)
    assert curve[479] == pytest.approx(0.5, abs=1e-2)


def test_uninterruptible_clips_survive_an_interrupt() -> None:
    output, streams, events, _ = make_output()
    output.play(tone(440, 500, RATE), RATE, tag="speech")
    output.play(np.full(1000, 0.3, np.float32), RATE, uninterruptible=True, tag="safety")
    output.play(np.full(1000, 0.7, np.float32), RATE, tag="later")
    streams.last.pump(2)
    output.interrupt(fade_ms=10)
    written = streams.last.pump(4)[:, 0]
    fade_len = RATE // 100
    assert np.all(written[fade_len : fade_len + 1000] == np.float32(0.3))
    assert np.all(written[fade_len + 1000 :] == 0.0)
    assert kinds(events) == [
        (Kind.STARTED, "speech"),
        (Kind.DROPPED, "later"),
        (Kind.INTERRUPTED, "speech"),
        (Kind.STARTED, "safety"),
        (Kind.FINISHED, "safety"),
    ]


def test_interrupt_leaves_a_playing_uninterruptible_clip_alone() -> None:
    output, streams, events, _ = make_output()
    safety = np.full(3000, 0.3, np.float32)
    output.play(safety, RATE, uninterruptible=True, tag="safety")
    output.play(np.full(500, 0.7, np.float32), RATE, tag="chatter")
    streams.last.pump(1)
    output.interrupt()
    written = streams.last.pump(8)[:, 0]
    np.testing.assert_array_equal(written[: 3000 - BLOCK], safety[BLOCK:])
    assert np.all(written[3000 - BLOCK :] == 0.0)
    assert (Kind.DROPPED, "chatter") in kinds(events)
    assert (Kind.FINISHED, "safety") in kinds(events)


def test_clips_queued_after_an_interrupt_play_normally() -> None:
    output, streams, events, _ = make_output()
    output.play(tone(440, 500, RATE), RATE, tag="old")
    streams.last.pump(1)
    output.interrupt()
    output.play(np.full(100, 0.2, np.float32), RATE, tag="new")
    streams.last.pump(3)
    assert (Kind.FINISHED, "new") in kinds(events)
    assert (Kind.INTERRUPTED, "old") in kinds(events)


def test_reference_gets_exactly_what_was_written_with_dac_times() -> None:
    output, streams, _, reference = make_output()
    output.play(tone(300, 70, RATE), RATE)
    written = streams.last.pump(5)[:, 0]
    output.interrupt()
    written = np.concatenate([written, streams.last.pump(2)[:, 0]])
    np.testing.assert_array_equal(np.concatenate([b.pcm for b in reference]), written)
    times = [b.time_s for b in reference]
    assert times[0] == pytest.approx(100.06)
    assert np.allclose(np.diff(times), BLOCK / RATE)
    assert all(b.sample_rate_hz == RATE for b in reference)


def test_play_resamples_to_the_device_rate() -> None:
    output, streams, events, _ = make_output()
    clip = tone(440, 1000, 22_050)
    output.play(clip, 22_050, tag="speech")
    written = streams.last.pump(120)[:, 0]
    played = np.flatnonzero(written != 0.0)
    finished = next(e for e in events if e.kind is Kind.FINISHED)
    started = next(e for e in events if e.kind is Kind.STARTED)
    played_samples = round((finished.time_s - started.time_s) * RATE)
    assert played_samples == resampled_length(22_050, 22_050, RATE)
    assert played[-1] < RATE
    expected = resample(clip, 22_050, RATE)
    np.testing.assert_allclose(written[: len(expected)], expected, atol=1e-6)
    spectrum = np.abs(np.fft.rfft(written[: len(expected)]))
    assert np.argmax(spectrum) * RATE / len(expected) == pytest.approx(440, abs=2)


def test_stereo_only_devices_get_the_mono_signal_on_both_channels() -> None:
    streams = FakeStreams(refuse_channels=1)
    output = Output(sample_rate_hz=RATE, stream_factory=streams)
    output.play(np.full(100, 0.5, np.float32), RATE)
    written = streams.last.pump(1)
    assert written.shape == (BLOCK, 2)
    np.testing.assert_array_equal(written[:, 0], written[:, 1])


def test_a_stream_that_cannot_open_is_audio_unavailable() -> None:
    def refuse(**kwargs: object) -> FakeStreams:
        raise OSError("Error opening OutputStream: Device unavailable [PaErrorCode -9985]")

    with pytest.raises(AudioUnavailable, match="cannot open audio output"):
        Output(sample_rate_hz=RATE, stream_factory=refuse)


def test_a_device_that_goes_away_is_device_lost() -> None:
    output, streams, events, _ = make_output()
    output.play(tone(440, 1000, RATE), RATE, tag="speech")
    streams.last.pump(1)
    streams.last.finished()  # PortAudio ends the stream on its own: the device is gone
    assert isinstance(output.error, DeviceLost)
    assert events[-1].kind is Kind.LOST
    assert output.idle()
    with pytest.raises(DeviceLost):
        output.play(tone(440, 100, RATE), RATE)
    with pytest.raises(DeviceLost):
        output.wait_idle(0)
    assert isinstance(output.error, CoachError)  # the CLI prints it, no traceback


def test_a_stalled_stream_is_device_lost_when_checked() -> None:
    output, _, events, _ = make_output()
    output.check(stall_s=60)
    output._last_callback -= 120  # no callback for two minutes
    with pytest.raises(DeviceLost, match="stopped responding"):
        output.check(stall_s=60)
    assert events[-1].kind is Kind.LOST


def test_closing_is_not_a_lost_device() -> None:
    output, streams, events, _ = make_output()
    output.close()
    streams.last.finished()
    assert output.error is None
    assert events == []


def test_input_delivers_16khz_int16_blocks_with_level_and_time() -> None:
    streams = FakeStreams()
    blocks: list[AudioBlock] = []
    device = Device(0, "mic", "ALSA", 2, 0, 44_100, True, False)
    microphone = Input(device, on_block=blocks.append, stream_factory=streams)
    stream = streams.last
    assert stream.kwargs["samplerate"] == 44_100
    assert stream.kwargs["blocksize"] == 882
    assert not microphone.wait_first_block(0)
    stream.feed(tone(1000, 1000, 44_100, amplitude=1.0))
    assert microphone.wait_first_block(0)
    assert all(b.pcm.dtype == np.int16 and len(b.pcm) == 320 for b in blocks)
    assert all(b.sample_rate_hz == INPUT_SAMPLE_RATE_HZ for b in blocks)
    assert len(blocks) in (49, 50)  # the resampler holds back < 1 ms
    assert blocks[10].level_dbfs == pytest.approx(-3.0, abs=0.2)  # a full-scale sine
    assert microphone.level_dbfs == pytest.approx(-3.0, abs=0.2)
    assert np.allclose(np.diff([b.time_s for b in blocks]), 0.02, atol=1e-6)
    # PortAudio's ADC time was 0.6 s early (as through PulseAudio): arrival time is used.
    last_device_block_s = stream.time - 0.02
    assert blocks[-1].time_s == pytest.approx(last_device_block_s - 0.02, abs=0.001)
    microphone.close()
    assert stream.closed


def test_input_trusts_a_plausible_adc_time() -> None:
    streams = FakeStreams()
    blocks: list[AudioBlock] = []
    device = Device(0, "mic", "ALSA", 1, 0, 16_000, True, False)
    Input(device, on_block=blocks.append, stream_factory=streams)
    streams.last.feed(np.zeros(320, np.float32), adc_age_s=0.045)  # block 20 ms + 25 ms
    assert len(blocks) == 1
    assert blocks[0].time_s == pytest.approx(streams.last.time - 0.045)


def test_input_queues_blocks_and_drops_the_oldest_when_nobody_reads() -> None:
    streams = FakeStreams()
    device = Device(0, "mic", "ALSA", 1, 0, 16_000, True, False)
    microphone = Input(device, stream_factory=streams, queue_blocks=10)
    streams.last.feed(np.zeros(16_000, np.float32))
    assert microphone.blocks.qsize() == 10
    assert microphone.dropped_blocks == 40
    assert microphone.blocks.get_nowait().level_dbfs == -120.0


def test_input_reports_a_lost_device() -> None:
    streams = FakeStreams()
    lost: list[DeviceLost] = []
    microphone = Input(
        Device(0, "mic", "ALSA", 1, 0, 16_000), on_lost=lost.append, stream_factory=streams
    )
    streams.last.finished()
    assert len(lost) == 1
    with pytest.raises(DeviceLost):
        microphone.check()


def test_level_dbfs() -> None:
    assert level_dbfs(np.zeros(10)) == -120.0
    assert level_dbfs(np.full(10, 0.5)) == pytest.approx(-6.02, abs=0.01)
    assert level_dbfs(np.full(10, 16384), full_scale=32768) == pytest.approx(-6.02, abs=0.01)


DEVICES = [
    Device(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", "ALSA", 2, 2, 48_000),
    Device(1, "USB Headset: Audio (hw:1,0)", "ALSA", 1, 2, 44_100),
    Device(2, "pulse", "ALSA", 32, 32, 44_100),
    Device(3, "default", "ALSA", 32, 32, 44_100, True, True),
    Device(4, "HDMI 0 (hw:0,3)", "ALSA", 0, 8, 48_000),
]


def test_pick_device_by_index_name_and_default() -> None:
    assert pick_device(None, "output", DEVICES).index == 3
    assert pick_device("", "input", DEVICES).index == 3
    assert pick_device(1, "input", DEVICES).index == 1
    assert pick_device("4", "output", DEVICES).index == 4
    assert pick_device("usb", "input", DEVICES).index == 1
    assert pick_device("PULSE", "output", DEVICES).index == 2
    assert pick_device("hdmi", "output", DEVICES).name.startswith("HDMI")


def test_pick_device_errors_list_the_candidates() -> None:
    with pytest.raises(CoachError, match=r"input device with index 4; choose one of: 0: HDA"):
        pick_device(4, "input", DEVICES)  # HDMI has no input channels
    with pytest.raises(CoachError, match=r"matches 'speaker'.*3: default"):
        pick_device("speaker", "output", DEVICES)
    with pytest.raises(CoachError, match=r"ambiguous.*0: HDA.*4: HDMI"):
        pick_device("hw:0", "output", DEVICES)
    with pytest.raises(AudioUnavailable, match="no audio output device found"):
        pick_device(None, "output", [])


RATE_PAIRS = [
    (44_100, 16_000),
    (48_000, 16_000),
    (22_050, 16_000),
    (8_000, 16_000),
    (22_050, 48_000),
]


def test_lowpass_taps_are_firwins_kaiser_design() -> None:
    from scipy.signal import firwin

    for num_taps, cutoff in [(61, 1 / 3), (6401, 1 / 320), (21, 0.5)]:
        expected = firwin(num_taps, cutoff, window=("kaiser", 5.0))
        np.testing.assert_allclose(lowpass_taps(num_taps, cutoff), expected, rtol=0, atol=1e-12)


def test_resample_keeps_the_length_contract() -> None:
    rng = np.random.default_rng(4)
    for n in (0, 1, 7, 20_000, 40_001):
        x = rng.standard_normal(n).astype(np.float32)
        for from_hz, to_hz in RATE_PAIRS:
            up, down = to_hz // gcd(from_hz, to_hz), from_hz // gcd(from_hz, to_hz)
            y = resample(x, from_hz, to_hz)
            assert y.dtype == np.float32
            # resample_poly's length: what callers (and the recorded-audio tests) expect.
            assert len(y) == len(resample_poly(np.zeros(n), up, down)) == resampled_length(
                n, from_hz, to_hz
            )


def _tones(tones: list[tuple[float, float]], rate_hz: int, n: int) -> np.ndarray:
    t = np.arange(n) / rate_hz
    return np.asarray(sum(a * np.sin(2 * np.pi * f * t) for a, f in tones))


def test_resample_reproduces_tones_at_the_new_rate() -> None:
    for from_hz, to_hz in RATE_PAIRS:
        top_hz = 0.4 * min(from_hz, to_hz)
        tones = [(0.3, 440.0), (0.2, top_hz / 2), (0.1, top_hz)]

        x = _tones(tones, from_hz, from_hz).astype(np.float32)  # one second
        y = resample(x, from_hz, to_hz)
        exact = _tones(tones, to_hz, len(y))
        middle = slice(len(y) // 4, 3 * len(y) // 4)  # away from the clip's edges
        # In time (no delay) and in level: resample_poly's filter was off by up to 3e-3.
        assert np.max(np.abs(y[middle] - exact[middle])) < 1e-4, (from_hz, to_hz)


def test_stream_resampler_matches_resample_poly_block_by_block() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal(20_000).astype(np.float32)
    for from_hz, to_hz in RATE_PAIRS:
        streamer = StreamResampler(from_hz, to_hz)
        pieces, start = [], 0
        while start < len(x):
            size = int(rng.integers(1, 1500))
            pieces.append(streamer.process(x[start : start + size]))
            start += size
        y = np.concatenate(pieces)
        up, down = to_hz // gcd(from_hz, to_hz), from_hz // gcd(from_hz, to_hz)
        whole = resample_poly(x.astype(np.float64), up, down)
        # The streamer holds back the last 10 zero crossings of the filter (<= 30 samples).
        assert len(whole) - 31 <= len(y) <= len(whole)
        np.testing.assert_allclose(y, whole[: len(y)], atol=1e-5)


def test_live_audio_path_does_not_import_scipy() -> None:
    """scipy.signal costs a second of interpreter time: on the speaker's thread, underflows."""
    code = (
        "import sys, numpy as np\n"
        "from coach import audio, live\n"
        "from coach.resample import StreamResampler, resample\n"
        "StreamResampler(44_100, 16_000).process(np.ones(441))\n"
        "resample(np.ones(2205), 22_050, 48_000)\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_stream_resampler_at_equal_rates_passes_through() -> None:
    streamer = StreamResampler(16_000, 16_000)
    np.testing.assert_array_equal(streamer.process(np.arange(5.0)), np.arange(5.0))
    assert streamer.input_position(3) == 3.0


class FakeDuplexStream:
    """A full-duplex stream: one callback gets microphone and speaker buffers together."""

    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs
        self.started = False
        self.closed = False
        self.time = 50.0
        self.active = True

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.active = False

    def close(self) -> None:
        self.closed = True

    def pump(self, mic: np.ndarray) -> np.ndarray:
        frames = int(self.kwargs["blocksize"])  # type: ignore[call-overload]
        out = np.zeros((frames, 1), np.float32)
        self.time += frames / 44_100
        info = SimpleNamespace(
            currentTime=self.time, outputBufferDacTime=self.time + 0.03, inputBufferAdcTime=0.0
        )
        self.kwargs["callback"](mic.reshape(-1, 1), out, frames, info, None)  # type: ignore[operator]
        return out[:, 0]


def test_single_stream_duplex_drives_both_directions_from_one_callback() -> None:
    made: list[FakeDuplexStream] = []

    def factory(**kwargs: object) -> FakeDuplexStream:
        made.append(FakeDuplexStream(**kwargs))
        return made[-1]

    device = Device(3, "default", "ALSA", 32, 32, 44_100, True, True)
    blocks: list[AudioBlock] = []
    microphone, output = open_duplex(
        device, device, on_block=blocks.append, single_stream=True, stream_factory=factory
    )
    assert len(made) == 1
    stream = made[0]
    assert stream.started
    assert stream.kwargs["channels"] == (1, 1)
    assert stream.kwargs["device"] == (3, 3)
    assert stream.kwargs["blocksize"] == 441
    output.play(np.full(441, 0.25, np.float32), 44_100)
    assert np.all(stream.pump(np.zeros(441, np.float32)) == np.float32(0.25))
    stream.pump(np.zeros(441, np.float32))
    stream.pump(np.zeros(441, np.float32))  # 30 ms in: one 20 ms microphone block is out
    assert len(blocks) == 1 and blocks[0].sample_rate_hz == INPUT_SAMPLE_RATE_HZ
    output.close()
    assert not stream.closed  # the microphone still uses it
    stream.kwargs["finished_callback"]()  # type: ignore[operator]
    assert output.error is None
    microphone.close()
    assert stream.closed
