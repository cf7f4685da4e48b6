"""`coach run` without a speaker: it says so and renders the session to a file (real espeak)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile

import coach.audio
from coach.audio import Probe
from coach.cli import main

ROUTINE = Path(__file__).resolve().parent / "data" / "session_short.yaml"

pytestmark = [
    pytest.mark.speech,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]


def test_no_output_device_renders_the_session_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The device boundary: PortAudio reports no output device (a machine with no sound card).
    monkeypatch.setattr(
        coach.audio, "probe_output", lambda *a, **k: Probe(None, "no audio output device found")
    )
    monkeypatch.chdir(tmp_path)
    code = main(["run", str(ROUTINE), "--pace", "1.4"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    track = tmp_path / "coach-session-short.mp3"
    assert track.is_file()
    assert "no audio output device" in captured.err
    assert str(track) in captured.err and str(track) in captured.out
    assert "Traceback" not in captured.err
    info = soundfile.info(str(track))
    assert info.duration > 60


def test_render_to_writes_the_named_file(tmp_path: Path) -> None:
    out = tmp_path / "session.wav"
    assert main(["run", str(ROUTINE), "--pace", "1.4", "--render-to", str(out)]) == 0
    assert soundfile.info(str(out)).duration > 60


def test_bad_options_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(ROUTINE), "--pace", "3"]) == 2
    assert main(["run", "no-such-routine"]) == 2
    err = capsys.readouterr().err
    assert "pace must be between" in err
    assert "no-such-routine" in err
    assert "Traceback" not in err
