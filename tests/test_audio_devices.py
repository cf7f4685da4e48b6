"""``coach devices`` and the device probes, with and without a sound server."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pulse_support import PulseServer, pulse

from coach.commands import devices

__all__ = ["pulse"]  # the fixture, imported so pytest finds it


def no_server_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which libpulse finds no server (and will not spawn one)."""
    runtime = tmp_path / "run"
    runtime.mkdir(exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PULSE_RUNTIME_PATH": str(runtime)}
    env["PULSE_SERVER"] = f"unix:{runtime / 'nobody-listens'}"
    env["HOME"] = str(tmp_path)
    return env


def run_coach(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coach", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_devices_without_a_sound_server_explains_and_exits_0(tmp_path: Path) -> None:
    done = run_coach("devices", "--json", env=no_server_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    listing = json.loads(done.stdout)
    if listing["output"]:
        pytest.skip("this machine has a sound card, so 'no device' cannot be shown here")
    assert listing == {"input": [], "output": [], "problem": listing["problem"]}
    assert "no audio devices found" in listing["problem"]
    assert "coach: no audio devices found" in done.stderr


PROBE_SCRIPT = """
from coach.audio import AudioUnavailable, Output, Input, probe_input, probe_output
out, mic = probe_output(), probe_input()
print(out.ok, mic.ok)
print(out.reason)
for opener in (Output, Input):
    try:
        opener()
    except AudioUnavailable as err:
        print("unavailable:", err)
"""


def test_probes_without_a_sound_server_give_a_reason_not_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT],
        env=no_server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    if lines[0] != "False False":
        pytest.skip("this machine has a sound card, so 'no device' cannot be shown here")
    assert lines[1] == "no audio output device found (is a sound server running?)"
    assert lines[2:] == [
        "unavailable: no audio output device found (is a sound server running?)",
        "unavailable: no audio input device found (is a sound server running?)",
    ]


@pytest.mark.audio
def test_devices_lists_the_pulse_devices_with_defaults(
    pulse: PulseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    done = run_coach("devices", "--json", env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert listing["problem"] is None
    for kind in ("input", "output"):
        names = {d["name"]: d for d in listing[kind]}
        assert {"pulse", "default"} <= set(names)
        assert names["default"]["default"] is True
        assert names["default"]["default_sample_rate_hz"] == 44_100
    assert devices.run(argparse.Namespace(json=False)) == 0  # same process: quicker
    human = capsys.readouterr().out
    assert "1  default  (ALSA, 32 ch, 44100 Hz)  *default*" in human


def test_devices_human_listing_when_there_are_none(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(devices, "list_devices", list)
    assert devices.run(argparse.Namespace(json=False)) == 0
    captured = capsys.readouterr()
    assert captured.out == "Output devices:\n  (none)\nInput devices:\n  (none)\n"
    assert captured.err == f"coach: {devices.NO_DEVICES}\n"
