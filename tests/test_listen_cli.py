"""``coach listen --wav FILE --json`` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from listen_support import USER_VOICE, concat, ko_model_dir, silence, speak
from scipy.signal import resample_poly

from coach.cli import main

pytestmark = [pytest.mark.vosk, pytest.mark.speech]


def test_listen_to_a_wav_prints_json_events_in_the_files_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = concat([silence(700), speak("아파", *USER_VOICE), silence(1500)])
    # Written at 22.05 kHz stereo so the command resamples and mixes it down.
    wav = tmp_path / "pain.wav"
    upsampled = resample_poly(audio.astype(np.float32) / 32768, 441, 320)
    sf.write(str(wav), np.stack([upsampled, upsampled], axis=1), 22050)
    code = main(["listen", "--language", "ko", "--model", str(ko_model_dir()),
                 "--wav", str(wav), "--json"])
    out = capsys.readouterr()
    assert code == 0
    events = [json.loads(line) for line in out.out.splitlines()]
    assert [e["command"] for e in events] == ["PAIN"]
    event = events[0]
    assert set(event) == {"command", "phrase", "confidence", "word_end_ms", "detected_ms"}
    assert event["phrase"] == "아파"
    assert 700 < event["word_end_ms"] < event["detected_ms"] < 700 + 1500 + 700
    assert "Vosk" in out.err


def test_listen_with_a_missing_model_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = tmp_path / "quiet.wav"
    sf.write(str(wav), np.zeros(1600, np.float32), 16000)
    code = main(["listen", "--engine", "vosk", "--model", str(tmp_path / "no-model"),
                 "--wav", str(wav)])
    assert code == 2
    assert "Vosk model folder not found" in capsys.readouterr().err
