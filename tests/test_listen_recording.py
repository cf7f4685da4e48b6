"""``coach run --record-audio``: what the listener got is kept, and ``coach listen
--with-reference`` replays it (real Vosk weights for the replay; fakes at the device edge)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from listen_support import COACH_VOICE, USER_VOICE, concat, ko_model_dir, mix, rms, silence, speak

from coach.audio import AudioBlock
from coach.cli import main
from coach.errors import CoachError
from coach.listen.commands import Command, CommandEvent
from coach.listen.listener import Listener
from coach.listen.vocabulary import load_vocabulary
from coach.listen.vosk_engine import VoskEngine, VoskModel
from coach.listen_recording import EchoChange, ListenRecording, read_notes
from coach.live import EchoReference, Hearing, PlayedSentences

RATE = 16_000
COACH_TEXT = "좋아요 천천히 다리를 들어 올리세요 그리고 숨을 쉬세요"


class PainAt:
    """Stands in for the Listener: reports PAIN at one block, remembers the reference."""

    def __init__(self, block: int) -> None:
        self.block = block
        self.fed = 0
        self.references: list[np.ndarray[Any, Any]] = []

    def feed(self, mic: Any, reference: Any, text: Any) -> list[CommandEvent]:
        self.references.append(np.asarray(reference).copy())
        self.fed += 1
        if self.fed - 1 == self.block:
            return [CommandEvent(Command.PAIN, "pain", 0.9, 100, 120)]
        return []

    def reference_moved(self, correction: int | None = None) -> None:
        pass

    def speaker_gap(self) -> None:
        pass

    def gap_measured(self) -> bool:
        return False


def test_the_hearing_records_each_block_with_its_reference_and_the_commands(
    tmp_path: Path,
) -> None:
    reference = EchoReference()
    # The speaker played a ramp; the listener gets it back as its echo reference.
    played = np.linspace(-0.5, 0.5, 48_000, dtype=np.float32)
    for start in range(0, len(played), 480):
        reference.add(AudioBlock(played[start : start + 480], 48_000, start / 48_000, -20.0))
    recording = ListenRecording(tmp_path / "rec")
    listener = PainAt(block=5)
    hearing = Hearing(listener, reference, PlayedSentences(), recording=recording)  # type: ignore[arg-type]
    try:
        for index in range(20):
            pcm = np.full(320, index + 1, dtype=np.int16)
            hearing.on_block(AudioBlock(pcm, RATE, index * 0.02, -30.0))
        deadline = time.monotonic() + 5
        while listener.fed < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        hearing.close()
    assert listener.fed == 20
    data, rate = sf.read(str(tmp_path / "rec" / "listen.wav"), dtype="int16", always_2d=True)
    assert rate == RATE and data.shape == (20 * 320, 2)
    np.testing.assert_array_equal(data[::320, 0], np.arange(1, 21))
    np.testing.assert_array_equal(data[:, 1], np.concatenate(listener.references))
    assert np.abs(data[:, 1]).max() > 1000  # the ramp, not silence
    notes = [json.loads(line) for line in (tmp_path / "rec" / "listen.jsonl").open()]
    heard = [note for note in notes if "heard" in note]
    assert [note["heard"]["command"] for note in heard] == ["PAIN"]
    assert heard[0]["ms"] == 6 * 20  # after the sixth block
    assert 0 <= heard[0]["lag_ms"] < 5000  # how long after its block arrived


def test_a_folder_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CoachError, match="cannot record the listener's audio"):
        ListenRecording(blocker / "rec")


def test_a_full_disk_stops_the_recording_not_the_listening(tmp_path: Path) -> None:
    recording = ListenRecording(tmp_path / "rec")

    class FullDisk:
        def write(self, data: Any) -> None:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    recording._wav = FullDisk()
    block = np.zeros(320, np.int16)
    recording.write(block, block, "a sentence")
    recording.write(block, block, "a sentence")  # no second error
    assert recording.failure is not None and "No space left" in recording.failure
    recording.close()


@pytest.mark.vosk
@pytest.mark.speech
def test_a_recording_replays_exactly_what_the_listener_heard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The replay gives the very events (times, confidences) that the listener gave as the
    # blocks came: Vosk's decodes repeat (test_listen_vosk.py), so a recording of a missed
    # or false command replays as it happened.
    coach = concat([speak(COACH_TEXT, *COACH_VOICE), silence(1500)])
    word = speak("아파", *USER_VOICE)
    at = 1 * RATE  # where this sentence lets Vosk hear it (not everywhere: issue 4)
    said = np.zeros_like(coach)
    said[at : at + len(word)] = word
    mic = mix(coach, said, rms(coach) / rms(word))  # PAIN over the coach's echo at 0 dB
    recording = ListenRecording(tmp_path)
    listener = Listener(VoskEngine(VoskModel(ko_model_dir()), load_vocabulary("ko")))
    live: list[CommandEvent] = []
    for start in range(0, len(mic), 320):
        text = COACH_TEXT if start < len(coach) - 1500 * 16 else None
        mic_block, coach_block = mic[start : start + 320], coach[start : start + 320]
        recording.write(mic_block, coach_block, text)
        live += listener.feed(mic_block, coach_block, text)
    recording.close()
    changes, moves = read_notes(tmp_path / "listen.wav")
    assert [text for _, text in changes] == [COACH_TEXT, None] and not moves

    model = ["--language", "ko", "--model", str(ko_model_dir())]
    wav = str(tmp_path / "listen.wav")
    code = main(["listen", *model, "--wav", wav, "--with-reference", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    events = [json.loads(line) for line in out.out.splitlines()]
    assert [e["command"] for e in events] == ["PAIN"]
    assert at * 1000 // RATE < events[0]["word_end_ms"] < events[0]["detected_ms"]
    assert events == [event.to_json() for event in live]


def test_with_reference_refuses_a_plain_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = tmp_path / "mono.wav"
    sf.write(str(wav), np.zeros(1600, np.float32), RATE)
    code = main(["listen", "--engine", "spotter", "--wav", str(wav), "--with-reference"])
    assert code == 2
    err = capsys.readouterr().err
    assert str(wav) in err and "2 channels at 16000 Hz" in err and "Traceback" not in err


def test_a_broken_notes_file_names_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sf.write(str(tmp_path / "listen.wav"), np.zeros((1600, 2), np.int16), RATE)
    (tmp_path / "listen.jsonl").write_text('{"ms": 0, "playing": "hi"}\n{"ms": 5, "pla\n')
    wav = str(tmp_path / "listen.wav")
    code = main(["listen", "--engine", "spotter", "--wav", wav, "--with-reference"])
    assert code == 2
    assert "listen.jsonl:2: not a JSON object" in capsys.readouterr().err


def test_the_replay_tells_the_listener_about_the_echo_where_the_session_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = ListenRecording(tmp_path)
    block = np.zeros(320, np.int16)
    for index in range(8):
        if index == 2:
            recording.speaker_gap()  # before the third block, as the Hearing does
        if index == 3:
            recording.reference_moved(-160)
        if index == 5:
            recording.speaker_gap()
        if index == 6:
            recording.gap_measured()
        recording.write(block, block, None)
    recording.close()
    # A move noted by an older coach (no correction) reads as one.
    with (tmp_path / "listen.jsonl").open("a", encoding="utf-8") as notes:
        notes.write('{"ms": 140, "sample": 2240, "reference_moved": true}\n')
    assert read_notes(tmp_path / "listen.wav") == ([], [
        EchoChange(640, "speaker_gap"), EchoChange(960, "reference_moved", -160),
        EchoChange(1600, "speaker_gap"), EchoChange(1920, "gap_measured"),
        EchoChange(2240, "reference_moved", None),
    ])

    from coach.commands.listen import silence_lead_ms
    from coach.listen.listener import Listener
    from coach.listen.spotter import warmup_ms

    told: list[tuple[str, int, int | None]] = []
    monkeypatch.setattr(Listener, "speaker_gap",
                        lambda self: told.append(("gap", self.stream_ms, None)))
    monkeypatch.setattr(Listener, "gap_measured",
                        lambda self: told.append(("measured", self.stream_ms, None)) or True)
    monkeypatch.setattr(Listener, "reference_moved",
                        lambda self, correction=None: told.append(("moved", self.stream_ms,
                                                                   correction)))
    wav = str(tmp_path / "listen.wav")
    assert main(["listen", "--engine", "spotter", "--wav", wav, "--with-reference"]) == 0
    # Before those 20 ms blocks of the file, which comes after the spotter's warm-up silence.
    lead = silence_lead_ms(warmup_ms())
    assert told == [("gap", lead + 40, None), ("moved", lead + 60, -160),
                    ("gap", lead + 100, None), ("measured", lead + 120, None),
                    ("moved", lead + 140, None)]
