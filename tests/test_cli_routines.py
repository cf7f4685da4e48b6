"""``coach check``, ``coach schema`` and ``coach list``: output and exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from routine_support import TYPOS_PATH, VALID_PATH

from coach.cli import main
from coach.loader import builtin_ids

REPO = Path(__file__).resolve().parents[1]


def test_check_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(VALID_PATH)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{VALID_PATH}: ok\n"
    assert err == ""


def test_check_reports_every_problem_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(VALID_PATH), str(TYPOS_PATH)]) == 2
    out, err = capsys.readouterr()
    assert out == f"{VALID_PATH}: ok\n"
    lines = err.splitlines()
    assert len(lines) == 11
    assert lines[0] == (
        f"{TYPOS_PATH}:2:5: id: must be an id of lower-case letters, digits, '-' and '_' "
        "(got 'Typo Routine')"
    )
    hint = f"{TYPOS_PATH}:23:5: exercises[0].hold_sec: unknown field 'hold_sec'; did you mean "
    assert hint + "'hold_s'?" in lines
    assert "Traceback" not in err


def test_check_missing_and_non_utf8_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"id: caf\xe9\n")
    missing = tmp_path / "missing.yaml"
    assert main(["check", str(missing), str(latin1)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{missing}: no such file",
        f"{latin1}:1:8: not valid UTF-8 (byte 0xe9 at offset 7); save the file as UTF-8",
    ]


def test_check_every_builtin_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted((REPO / "coach" / "routines").glob("*.yaml"))
    assert [path.stem for path in files] == builtin_ids()
    assert main(["check", *map(str, files)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{path}: ok" for path in files]


def test_check_needs_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["check"])
    assert caught.value.code == 2
    assert "PATH" in capsys.readouterr().err


def test_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:coach:routine:v1"
    assert schema["title"] == "coach routine"
    assert schema["type"] == "object"
    assert {"id", "title", "sources", "safety", "exercises"} <= set(schema["required"])
    exercise = schema["$defs"]["Exercise"]
    assert exercise["additionalProperties"] is False
    assert exercise["properties"]["tempo_s"]["exclusiveMinimum"] == 0
    assert exercise["properties"]["hold_s"]["title"] == "Hold S"


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == builtin_ids()
    beginner = next(line for line in lines if line.startswith("beginner "))
    assert "Beginner floor session" in beginner
    assert "ankle pumps, the lying glide" in beginner
    assert beginner.endswith("(default)")
    # Duration as minutes:seconds.
    assert any(
        part.count(":") == 1 and part.replace(":", "").isdigit() for part in beginner.split()
    )


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [entry["id"] for entry in entries] == builtin_ids()
    for entry in entries:
        assert isinstance(entry["title"], str) and entry["title"]
        assert isinstance(entry["total_ms"], int) and entry["total_ms"] > 0
        assert entry["exercises"] and all(e["name"] and e["id"] for e in entry["exercises"])
    beginner = next(entry for entry in entries if entry["id"] == "beginner")
    assert beginner["default"] is True
    assert [e["id"] for e in beginner["exercises"]] == ["ankle-pumps-lying", "supine-glide"]
    assert {e["position"] for e in beginner["exercises"]} == {"lying_on_back"}


def test_real_entry_point_exit_codes_without_traceback() -> None:
    def coach(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "coach", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )

    bad = coach("check", str(TYPOS_PATH))
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert "Traceback" not in bad.stderr
    assert f"{TYPOS_PATH}:24:14: exercises[0].tempo_s: must be greater than 0 (got 0)" in (
        bad.stderr.splitlines()
    )
    good = coach("check", str(VALID_PATH))
    assert (good.returncode, good.stdout, good.stderr) == (0, f"{VALID_PATH}: ok\n", "")
