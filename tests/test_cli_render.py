"""``coach render`` end to end in-process: real espeak-ng, exit codes, no partial files."""

from __future__ import annotations

import re
from pathlib import Path

import mutagen
import pytest
import yaml
from track_support import FAST_PACE, decode, small_routine

from coach.cli import main

pytestmark = pytest.mark.speech


@pytest.fixture
def routine_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    data = small_routine().model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_render_writes_the_file_and_prints_a_summary(
    routine_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "session.ogg"
    out.parent.mkdir()
    argv = ["render", str(routine_file), "-o", str(out), "--pace", str(FAST_PACE)]
    assert main([*argv, "--voice", "brisk", "--side-first", "right"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no progress bar when stderr is not a terminal
    lines = captured.out.splitlines()
    assert lines[0] == f"Rendered track-test (Track test) to {out}"
    assert "3 chapters" in lines[1]
    assert "ogg, 22050 Hz mono" in lines[2] and "LUFS" in lines[2]
    assert re.search(r"\d+ phrases; (\d+) distinct: 0 from the cache, \1 synthesized$", lines[3])
    assert any(line.strip().endswith("the seated glide") for line in lines)
    assert decode(out).duration_ms > 10_000
    tags = mutagen.File(out).tags
    assert tags["TITLE"] == ["Track test"] and "CHAPTER003NAME" in tags
    assert sorted(path.name for path in out.parent.iterdir()) == ["session.ogg"]

    # The same session again: everything comes from the cache.
    assert main([*argv, "--voice", "brisk", "--side-first", "right"]) == 0
    speech_line = capsys.readouterr().out.splitlines()[3]
    assert re.search(r"(\d+) distinct: \1 from the cache, 0 synthesized$", speech_line)


def test_wav_render_writes_a_cue_sheet_beside_it(
    routine_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "session.wav"
    assert main(["render", str(routine_file), "-o", str(out), "--pace", "1.5"]) == 0
    assert "cue sheet" in capsys.readouterr().out
    assert out.with_suffix(".cue").read_text(encoding="utf-8").count("INDEX 01") == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--voice", "no-such-voice"], "unknown voice 'no-such-voice'"),
        (["--format", "aiff"], "unknown audio format 'aiff'"),
        (["--pace", "9"], "pace must be between"),
    ],
)
def test_bad_options_are_one_line_errors_with_no_file(
    routine_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    out = tmp_path / "out" / "session.mp3"
    out.parent.mkdir()
    assert main(["render", str(routine_file), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coach: ") and message in err
    assert err.count("\n") == 1
    assert list(out.parent.iterdir()) == []


def test_unwritable_output_is_an_error_with_no_file(
    routine_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", str(routine_file), "-o", str(tmp_path / "no" / "x.mp3")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coach: cannot write") and err.count("\n") == 1
    assert main(["render", str(routine_file), "-o", str(tmp_path / "session.m4a")]) == 2
    assert "cannot tell the audio format" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["small.yaml"]


def test_an_invalid_routine_is_an_error_with_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    data = small_routine().model_dump(mode="json", exclude_none=True)
    data["exercises"][0]["reps_per_side"] = 0
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "session.mp3"
    assert main(["render", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coach: ") and "reps_per_side" in err
    assert not out.exists()


def test_unknown_routine_id_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "session.mp3"
    assert main(["render", "no-such-routine", "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith("coach: ")
    assert not out.exists()
