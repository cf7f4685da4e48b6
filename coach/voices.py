"""Voice profiles: how coach sounds (system voice per platform, rate, volume, pauses)."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coach.errors import CoachError

DEFAULT_VOICE_ID = "calm"
"""The profile used when none is chosen: slow and unhurried, for someone in pain."""

Platform = Literal["linux", "windows", "macos"]

ENGINE_PLATFORM: dict[str, Platform] = {
    "espeak": "linux",
    "sapi5": "windows",
    "nsss": "macos",
    "avspeech": "macos",
}
"""Which list of system voices applies to each pyttsx3 driver."""

_log = logging.getLogger(__name__)

_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class SystemVoices(BaseModel):
    """System voice ids to try, in order, on each platform (first available wins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    linux: tuple[str, ...] = ()
    """espeak-ng voice ids or languages, e.g. ``gmw/en-us``, ``en-us``, ``en``."""
    windows: tuple[str, ...] = ()
    """SAPI5 voice names (or token ids), e.g. ``Microsoft Zira Desktop``."""
    macos: tuple[str, ...] = ()
    """NSSpeechSynthesizer voice ids, e.g. ``com.apple.voice.compact.en-US.Samantha``."""

    @field_validator("linux", "windows", "macos")
    @classmethod
    def _no_blank_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not item.strip() for item in value):
            raise ValueError("voice ids must not be blank")
        return value

    def for_platform(self, platform: Platform) -> tuple[str, ...]:
        """The fallback chain for ``platform``."""
        chains: dict[Platform, tuple[str, ...]] = {
            "linux": self.linux,
            "windows": self.windows,
            "macos": self.macos,
        }
        return chains[platform]


class VoiceProfile(BaseModel):
    """A named way of speaking: which system voice, how fast, how loud, how long to pause."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID_PATTERN)
    """Profile id; equals the YAML file name without ``.yaml``."""
    description: str = Field(min_length=1)
    """One line for people choosing a voice."""
    language: str = Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    """BCP 47 language tag of the spoken text, e.g. ``en-US``."""
    system_voices: SystemVoices
    """System voice fallback chains per platform."""
    rate_wpm: int = Field(ge=80, le=400)
    """Speaking rate in words per minute."""
    volume: float = Field(ge=0.0, le=1.0)
    """Synthesizer volume, 0 (silent) to 1 (full)."""
    sentence_pause_ms: int = Field(ge=0, le=3000)
    """Silence appended after each spoken phrase, in ms (part of the phrase's length)."""


@dataclass(frozen=True, slots=True)
class SystemVoice:
    """A voice the synthesizer on this machine offers."""

    id: str
    name: str
    languages: tuple[str, ...] = ()
    gender: str | None = None


@dataclass(frozen=True, slots=True)
class ResolvedVoice:
    """The system voice a profile uses on this machine."""

    profile_id: str
    engine: str
    """pyttsx3 driver name, e.g. ``espeak``."""
    voice_id: str | None
    """System voice id to select; None means the engine's default voice."""
    requested: tuple[str, ...]
    """The profile's fallback chain for this engine."""
    matched: str | None
    """Which entry of ``requested`` matched (None when the default is used)."""

    @property
    def is_fallback(self) -> bool:
        """True when the first choice of the profile is not available here."""
        return not self.requested or self.matched != self.requested[0]


def voices_dir() -> Path:
    """The folder of voice profiles: top-level ``voices/``; ``COACH_VOICES_DIR`` overrides.

    A source checkout (or editable install) uses ``voices/`` beside the package; a wheel
    install carries the same files as data in ``<prefix>/share/coach/voices``.
    """
    override = os.environ.get("COACH_VOICES_DIR")
    if override:
        return Path(override)
    beside_package = Path(__file__).resolve().parent.parent / "voices"
    installed = Path(sys.prefix) / "share" / "coach" / "voices"
    return installed if not beside_package.is_dir() and installed.is_dir() else beside_package


def list_voices() -> list[VoiceProfile]:
    """All voice profiles in :func:`voices_dir`, sorted by id."""
    folder = voices_dir()
    if not folder.is_dir():
        raise CoachError(f"voice profile folder not found: {folder}")
    return [load_voice_file(path) for path in sorted(folder.glob("*.yaml"))]


def voice_ids() -> list[str]:
    """Ids of the available voice profiles, sorted."""
    folder = voices_dir()
    return sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else []


def load_voice(voice_id: str) -> VoiceProfile:
    """The profile ``voice_id``; an unknown id is a CoachError listing the known ones."""
    path = voices_dir() / f"{voice_id}.yaml"
    if not re.match(_ID_PATTERN, voice_id) or not path.is_file():
        known = ", ".join(voice_ids()) or "none"
        raise CoachError(f"unknown voice {voice_id!r}; available voices: {known}")
    return load_voice_file(path)


def load_voice_file(path: Path) -> VoiceProfile:
    """Parse and validate one profile file; its id must match the file name."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise CoachError(f"{path}: cannot read voice profile: {err}") from err
    if not isinstance(data, dict):
        raise CoachError(f"{path}: a voice profile must be a mapping")
    try:
        profile = VoiceProfile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top)"
        raise CoachError(f"{path}: {where}: {first['msg']}") from err
    if profile.id != path.stem:
        raise CoachError(f"{path}: id {profile.id!r} must match the file name {path.stem!r}")
    return profile


def _voice_matches(candidate: str, voice: SystemVoice) -> int:
    """How well ``candidate`` names ``voice``: 4 exact id ... 1 name prefix, 0 no match."""
    want = candidate.strip().casefold()
    vid = voice.id.casefold()
    # espeak ids look like "gmw/en-us", SAPI5 tokens like "HKEY...\\TTS_MS_EN-US_ZIRA_11.0",
    # NSSpeechSynthesizer ids like "com.apple.voice.compact.en-US.Samantha".
    tail = re.split(r"[/\\]", vid)[-1]
    name = voice.name.casefold()
    if want == vid:
        return 4
    if want in (tail, name):
        return 3
    if any(want == lang.casefold() for lang in voice.languages):
        return 2
    if name.startswith(want):
        return 1
    return 0


def resolve_system_voice(
    profile: VoiceProfile, engine: str, available: Sequence[SystemVoice]
) -> ResolvedVoice:
    """Walk the profile's fallback chain for ``engine``; last resort the engine default.

    Falling back to the engine default logs a warning: the voice may not fit the profile.
    """
    platform = ENGINE_PLATFORM.get(engine, "linux")
    chain = profile.system_voices.for_platform(platform)
    for candidate in chain:
        best: tuple[int, SystemVoice] | None = None
        for voice in available:
            score = _voice_matches(candidate, voice)
            if score and (best is None or score > best[0]):
                best = (score, voice)
        if best is not None:
            return ResolvedVoice(profile.id, engine, best[1].id, chain, candidate)
    _log.warning(
        "voice %r: none of %s is installed for %s; using the engine's default voice",
        profile.id,
        ", ".join(chain) or "(no voices listed)",
        engine,
    )
    return ResolvedVoice(profile.id, engine, None, chain, None)
