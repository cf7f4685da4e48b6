"""Voice profiles: shipped files, validation, fallback resolution and ``coach voices``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from speech_support import needs_espeak, profile

from coach.cli import main
from coach.errors import CoachError
from coach.voices import (
    DEFAULT_VOICE_ID,
    SystemVoice,
    VoiceProfile,
    list_voices,
    load_voice,
    resolve_system_voice,
    voices_dir,
)

ESPEAK_VOICES = [
    SystemVoice("gmw/en", "English (Great Britain)", ("en-gb",)),
    SystemVoice("gmw/en-us", "English (America)", ("en-us",)),
    SystemVoice("ko", "Korean", ("ko",)),
]
SAPI5_VOICES = [
    SystemVoice(
        r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Speech\Voices\Tokens\TTS_MS_EN-US_DAVID_11.0",
        "Microsoft David Desktop - English (United States)",
    ),
]
NSSS_VOICES = [
    SystemVoice("com.apple.speech.synthesis.voice.Alex", "Alex", ("en_US",)),
]


def test_shipped_profiles_load_and_calm_is_the_slow_default() -> None:
    assert voices_dir() == Path(__file__).resolve().parents[1] / "voices"
    ids = [p.id for p in list_voices()]
    assert DEFAULT_VOICE_ID == "calm" and {"calm", "brisk"} <= set(ids)
    calm, brisk = load_voice("calm"), load_voice("brisk")
    assert calm.rate_wpm < brisk.rate_wpm
    assert calm.sentence_pause_ms > brisk.sentence_pause_ms
    for voice in (calm, brisk):
        assert voice.system_voices.linux and voice.system_voices.windows
        assert voice.system_voices.macos
        assert 0 < voice.volume <= 1


def test_unknown_voice_lists_the_known_ones() -> None:
    with pytest.raises(CoachError) as err:
        load_voice("shouty")
    assert "shouty" in err.value.message
    assert "brisk" in err.value.message and "calm" in err.value.message
    with pytest.raises(CoachError, match="unknown voice"):
        load_voice("../calm")


def _write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


GOOD = """\
id: {id}
description: test
language: en-US
system_voices: {{linux: [en]}}
rate_wpm: 150
volume: 0.8
sentence_pause_ms: 100
"""


def test_voices_dir_override_and_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COACH_VOICES_DIR", str(tmp_path))
    _write(tmp_path, "mine", GOOD.format(id="mine"))
    assert voices_dir() == tmp_path
    assert [p.id for p in list_voices()] == ["mine"]
    assert load_voice("mine").system_voices.windows == ()

    _write(tmp_path, "other", GOOD.format(id="wrong"))
    with pytest.raises(CoachError, match="must match the file name"):
        load_voice("other")

    _write(tmp_path, "extra", GOOD.format(id="extra") + "pitch: 3\n")
    with pytest.raises(CoachError, match="pitch"):
        load_voice("extra")

    _write(tmp_path, "fast", GOOD.format(id="fast").replace("150", "900"))
    with pytest.raises(CoachError, match="rate_wpm"):
        load_voice("fast")

    _write(tmp_path, "loud", GOOD.format(id="loud").replace("0.8", "1.5"))
    with pytest.raises(CoachError, match="volume"):
        load_voice("loud")

    _write(tmp_path, "broken", "id: [unclosed\n")
    with pytest.raises(CoachError, match=r"broken\.yaml"):
        load_voice("broken")


def test_profile_model_forbids_extra_fields() -> None:
    with pytest.raises(ValueError):
        VoiceProfile.model_validate({**profile().model_dump(), "speed": 2})


def test_resolution_walks_the_fallback_chain() -> None:
    voice = profile(system_voices={"linux": ["gmw/en-au", "en-us", "en"]})
    resolved = resolve_system_voice(voice, "espeak", ESPEAK_VOICES)
    assert resolved.voice_id == "gmw/en-us"
    assert resolved.matched == "en-us" and resolved.is_fallback

    first = resolve_system_voice(profile(), "espeak", ESPEAK_VOICES)
    assert first.voice_id == "gmw/en-us" and not first.is_fallback


def test_resolution_matches_sapi5_and_nsss_names() -> None:
    voice = profile(
        system_voices={
            "linux": ["en"],
            "windows": ["Microsoft Zira Desktop", "Microsoft David Desktop"],
            "macos": ["com.apple.speech.synthesis.voice.samantha", "Alex"],
        }
    )
    sapi = resolve_system_voice(voice, "sapi5", SAPI5_VOICES)
    assert sapi.voice_id == SAPI5_VOICES[0].id and sapi.matched == "Microsoft David Desktop"
    mac = resolve_system_voice(voice, "nsss", NSSS_VOICES)
    assert mac.voice_id == "com.apple.speech.synthesis.voice.Alex"


def test_last_resort_is_the_engine_default_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    voice = profile(system_voices={"linux": ["xx-nowhere"]})
    with caplog.at_level(logging.WARNING):
        resolved = resolve_system_voice(voice, "espeak", ESPEAK_VOICES)
    assert resolved.voice_id is None and resolved.is_fallback
    assert "xx-nowhere" in caplog.text and "default voice" in caplog.text


@needs_espeak
@pytest.mark.speech
def test_coach_voices_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["voices", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["default"] == "calm"
    assert doc["engine"] == "espeak" and "espeak-ng" in doc["engine_id"]
    profiles = {p["id"]: p for p in doc["profiles"]}
    assert profiles["calm"]["rate_wpm"] == load_voice("calm").rate_wpm
    calm_voice = profiles["calm"]["resolves_to"]["voice_id"]
    system = {v["id"]: v for v in doc["system_voices"]}
    assert "calm" in system[calm_voice]["profiles"]
    assert len(system) > 10  # espeak-ng ships many voices


@needs_espeak
@pytest.mark.speech
def test_coach_voices_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["voices", "--language", "en"]) == 0
    out = capsys.readouterr().out
    assert "calm" in out and "brisk" in out and "gmw/en-us" in out
    assert "ko" not in {line.split()[1] for line in out.splitlines() if line.startswith("│")}


def test_coach_voices_without_engine(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import coach.commands.voices as command

    def missing(*_args: object, **_kwargs: object) -> object:
        raise CoachError("speech synthesizer 'espeak' is unavailable; install espeak-ng")

    monkeypatch.setattr(command, "Pyttsx3Backend", missing)
    assert main(["voices", "--json"]) == 2
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["engine"] is None and "espeak-ng" in doc["engine_error"]
    assert {p["id"] for p in doc["profiles"]} >= {"calm", "brisk"}
    assert "coach: speech synthesizer" in captured.err
