"""``coach plan``: the table, the JSON and the exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from timeline_support import exercise_data, make_routine

from coach.cli import main
from coach.commands.plan import format_offset
from coach.loader import DEFAULT_ROUTINE_ID, builtin_ids
from coach.timeline import CueKind, TimelineOptions, compile_timeline

ROW = re.compile(r"^\d{2,}:\d{2}\.\d{3}\s")


@pytest.fixture
def routine_file(tmp_path: Path) -> Path:
    routine = make_routine(exercise_data(sides="both", sets=2, reps_per_side=3))
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(routine.model_dump(mode="json", exclude_none=True)))
    return path


def run_plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_lists_cues_with_offsets_and_total(
    routine_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_plan(capsys, str(routine_file))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "test-routine: a test routine"
    rows = [line for line in lines if ROW.match(line)]
    timeline = compile_timeline(make_routine(exercise_data(sides="both", sets=2, reps_per_side=3)))
    shown = [cue for cue in timeline.cues if cue.kind is not CueKind.MARK]
    assert len(rows) == len(shown)
    assert rows[0].startswith("00:00.000")
    assert "Welcome." in rows[0]
    assert any("chapter" in row and "the lying glide" in row for row in rows)
    assert any("(hold_start)" in row for row in rows)
    assert not any(" mark " in row for row in rows)
    assert lines[-1].startswith(f"Total: {format_offset(timeline.total_ms)} ")
    assert f"({timeline.total_ms} ms)" in lines[-1]


def test_marks_option_adds_marker_rows(
    routine_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_plan(capsys, str(routine_file), "--marks")
    assert code == 0
    assert "[rep_start supine left set 1 rep 1]" in out
    assert "[session_end]" in out


def test_json_has_exactly_routine_total_and_cues(
    routine_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_plan(capsys, str(routine_file), "--json", "--pace", "0.8")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"routine", "total_ms", "cues"}
    assert data["routine"] == "test-routine"
    routine = make_routine(exercise_data(sides="both", sets=2, reps_per_side=3))
    timeline = compile_timeline(routine, TimelineOptions(pace=0.8))
    assert data["total_ms"] == timeline.total_ms
    assert len(data["cues"]) == len(timeline.cues)
    allowed = {"at_ms", "duration_ms", "kind", "text", "role", "earcon", "mark"}
    for cue, expected in zip(data["cues"], timeline.cues, strict=True):
        assert set(cue) <= allowed
        assert None not in cue.values()
        assert cue["kind"] in {"say", "pause", "tone", "chapter", "mark"}
        assert (cue["at_ms"], cue["duration_ms"]) == (expected.at_ms, expected.duration_ms)
    say = next(c for c in data["cues"] if c["kind"] == "say")
    assert set(say) == {"at_ms", "duration_ms", "kind", "text", "role"}
    tone = next(c for c in data["cues"] if c["kind"] == "tone")
    assert set(tone) == {"at_ms", "duration_ms", "kind", "earcon"}
    rep = next(c for c in data["cues"] if c.get("mark", {}).get("phase") == "rep_start")
    assert rep["mark"] == {
        "phase": "rep_start",
        "exercise_id": "supine",
        "exercise_index": 0,
        "leg": "left",
        "set_number": 1,
        "rep_number": 1,
    }


def test_side_and_affected_leg_options(
    routine_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_plan(capsys, str(routine_file), "--json", "--side-first", "right")
    assert code == 0
    legs = [
        c["mark"]["leg"]
        for c in json.loads(out)["cues"]
        if c.get("mark", {}).get("phase") == "side_start"
    ]
    assert legs == ["right", "left"]

    affected = make_routine(exercise_data(sides="affected"))
    path = routine_file.with_name("affected.yaml")
    path.write_text(yaml.safe_dump(affected.model_dump(mode="json", exclude_none=True)))
    code, out, _ = run_plan(capsys, str(path))
    assert code == 0 and "your painful leg" in out
    code, out, _ = run_plan(capsys, str(path), "--affected-leg", "right")
    assert code == 0 and "This one is for the right leg." in out
    assert "painful leg" not in out


def test_returning_option_shortens_the_plan(
    routine_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, full, _ = run_plan(capsys, str(routine_file), "--json")
    _, short, _ = run_plan(capsys, str(routine_file), "--json", "--returning")
    assert json.loads(short)["total_ms"] < json.loads(full)["total_ms"]


VOICE_YAML = """\
id: slowpoke
description: Very slow, for tests
language: en-US
system_voices:
  linux: [en-us]
  windows: [Microsoft Zira Desktop]
  macos: [com.apple.speech.synthesis.voice.samantha]
rate_wpm: 100
volume: 0.8
sentence_pause_ms: 500
"""


def test_voice_option_uses_the_profile_rate_and_pause(
    routine_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    voices = tmp_path / "voices"
    voices.mkdir()
    (voices / "slowpoke.yaml").write_text(VOICE_YAML)
    monkeypatch.setenv("COACH_VOICES_DIR", str(voices))
    code, out, err = run_plan(capsys, str(routine_file), "--json", "--voice", "slowpoke")
    assert code == 0, err
    routine = make_routine(exercise_data(sides="both", sets=2, reps_per_side=3))
    options = TimelineOptions(voice_id="slowpoke", rate_wpm=100, sentence_pause_ms=500)
    assert json.loads(out)["total_ms"] == compile_timeline(routine, options).total_ms

    code, out, err = run_plan(capsys, str(routine_file), "--voice", "nobody")
    assert code == 2 and out == ""
    assert err.startswith("coach: ") and "nobody" in err


def test_default_routine_is_the_builtin_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(capsys, "--json")
    assert code == 0
    assert json.loads(out)["routine"] == DEFAULT_ROUTINE_ID


@pytest.mark.parametrize("routine_id", builtin_ids())
def test_every_builtin_routine_plans(routine_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(capsys, routine_id, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["routine"] == routine_id
    assert data["total_ms"] == data["cues"][-1]["at_ms"] + data["cues"][-1]["duration_ms"]
    assert any(c["kind"] == "chapter" for c in data["cues"])


@pytest.mark.parametrize("pace", ["0.4", "1.6", "nan", "0"])
def test_bad_pace_exits_2_with_a_clear_message(
    pace: str, routine_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_plan(capsys, str(routine_file), f"--pace={pace}")
    assert code == 2
    assert out == ""
    assert err.startswith("coach: ")
    assert "pace must be between 0.5 and 1.5" in err
    assert "Traceback" not in err


def test_unknown_routine_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_plan(capsys, "no-such-routine")
    assert code == 2
    assert out == ""
    assert err.startswith("coach: ") and "no-such-routine" in err


def test_invalid_routine_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: broken\ntitle: [unclosed\n")
    code, _, err = run_plan(capsys, str(path))
    assert code == 2
    assert str(path) in err


@pytest.mark.parametrize(
    "args", [["--pace", "fast"], ["--side-first", "middle"], ["--affected-leg", "both"]]
)
def test_malformed_arguments_exit_2_with_usage(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["plan", *args])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage:" in err and "Traceback" not in err


def test_real_process_exits_2_without_traceback() -> None:
    # One real process (slow to start): the exit status and stderr a user actually sees.
    result = subprocess.run(
        [sys.executable, "-m", "coach", "plan", "--pace", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("coach: ") and "pace" in result.stderr
    assert "Traceback" not in result.stderr


def test_format_offset() -> None:
    assert format_offset(0) == "00:00.000"
    assert format_offset(61_234) == "01:01.234"
    assert format_offset(75 * 60_000 + 5) == "75:00.005"


def test_terminal_gets_a_rich_table_with_text_printed_verbatim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    routine = make_routine(exercise_data(setup=["Lie down [on a mat] and relax."]))
    path = tmp_path / "brackets.yaml"
    path.write_text(yaml.safe_dump(routine.model_dump(mode="json", exclude_none=True)))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_plan(capsys, str(path), "--marks")
    assert code == 0
    assert "Lie down [on a mat] and relax." in out
    assert "[rep_start supine left set 1 rep 1]" in out
    assert "Offset" in out and "Total: " in out
