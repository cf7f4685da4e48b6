"""``coach voices``: the voice profiles and the system voices they resolve to here."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from coach.errors import CoachError
from coach.speech import Pyttsx3Backend
from coach.voices import (
    DEFAULT_VOICE_ID,
    ResolvedVoice,
    SystemVoice,
    list_voices,
    resolve_system_voice,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``voices`` subcommand."""
    parser = sub.add_parser(
        "voices",
        help="list voice profiles and the system voices they use",
        description="List coach's voice profiles and the system voices pyttsx3 can see, "
        "marking which system voice each profile uses on this machine.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--language",
        metavar="PREFIX",
        help="only list system voices whose language starts with PREFIX (e.g. en)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List profiles and system voices; exit 2 if the speech engine is unavailable."""
    profiles = list_voices()
    engine_error: CoachError | None = None
    engine = engine_id = None
    system: list[SystemVoice] = []
    resolved: dict[str, ResolvedVoice] = {}
    try:
        backend = Pyttsx3Backend()
    except CoachError as err:
        engine_error = err
    else:
        try:
            engine, engine_id = backend.engine, backend.engine_id
            system = backend.voices()
            for profile in profiles:
                resolved[profile.id] = resolve_system_voice(profile, backend.engine, system)
        finally:
            backend.close()

    used_by: dict[str, list[str]] = {}
    for profile_id, voice in resolved.items():
        if voice.voice_id is not None:
            used_by.setdefault(voice.voice_id, []).append(profile_id)
    prefix = (args.language or "").casefold()
    shown = [
        voice
        for voice in system
        if not prefix
        or voice.id in used_by
        or any(lang.casefold().startswith(prefix) for lang in voice.languages)
    ]

    if args.json:
        _print_json(profiles, resolved, shown, used_by, engine, engine_id, engine_error)
    else:
        _print_tables(profiles, resolved, shown, used_by, engine_id)
    if engine_error is not None:
        raise engine_error
    return 0


def _resolution(voice: ResolvedVoice | None) -> dict[str, Any] | None:
    if voice is None:
        return None
    return {
        "voice_id": voice.voice_id,
        "matched": voice.matched,
        "fallback": voice.is_fallback,
        "engine_default": voice.voice_id is None,
    }


def _print_json(
    profiles: list[Any],
    resolved: dict[str, ResolvedVoice],
    shown: list[SystemVoice],
    used_by: dict[str, list[str]],
    engine: str | None,
    engine_id: str | None,
    engine_error: CoachError | None,
) -> None:
    document = {
        "default": DEFAULT_VOICE_ID,
        "profiles": [
            {
                "id": profile.id,
                "description": profile.description,
                "language": profile.language,
                "rate_wpm": profile.rate_wpm,
                "volume": profile.volume,
                "sentence_pause_ms": profile.sentence_pause_ms,
                "default": profile.id == DEFAULT_VOICE_ID,
                "resolves_to": _resolution(resolved.get(profile.id)),
            }
            for profile in profiles
        ],
        "engine": engine,
        "engine_id": engine_id,
        "engine_error": engine_error.message if engine_error else None,
        "system_voices": [
            {
                "id": voice.id,
                "name": voice.name,
                "languages": list(voice.languages),
                "gender": voice.gender,
                "profiles": used_by.get(voice.id, []),
            }
            for voice in shown
        ],
    }
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _print_tables(
    profiles: list[Any],
    resolved: dict[str, ResolvedVoice],
    shown: list[SystemVoice],
    used_by: dict[str, list[str]],
    engine_id: str | None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Voice profiles", title_justify="left")
    for column in ("id", "description", "rate (wpm)", "language", "system voice here"):
        table.add_column(column)
    for profile in profiles:
        voice = resolved.get(profile.id)
        if voice is None:
            here = "(no speech engine)"
        elif voice.voice_id is None:
            here = "engine default (none of the profile's voices installed)"
        else:
            here = voice.voice_id + (" (fallback)" if voice.is_fallback else "")
        name = profile.id + (" (default)" if profile.id == DEFAULT_VOICE_ID else "")
        table.add_row(name, profile.description, str(profile.rate_wpm), profile.language, here)
    console.print(table)
    if engine_id is None:
        return
    voices = Table(title=f"System voices ({engine_id})", title_justify="left")
    for column in ("id", "name", "languages", "used by"):
        voices.add_column(column)
    for system_voice in shown:
        users = used_by.get(system_voice.id, [])
        voices.add_row(
            system_voice.id,
            system_voice.name,
            ", ".join(system_voice.languages),
            ("◀ " + ", ".join(users)) if users else "",
        )
    console.print(voices)
