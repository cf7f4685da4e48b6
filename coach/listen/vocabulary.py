"""Command phrases per language: packaged YAML files plus the user's additions, validated."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coach.errors import CoachError
from coach.listen.commands import Command

USER_VOCABULARY_NAME = "vocabulary.yaml"
"""File name of the user's additions in ``coach.paths.config_dir()``."""

_SPACES = re.compile(r"\s+")
# Punctuation that people type in phrases but engines never output; apostrophes stay
# because they are part of words such as "that's".
_PUNCTUATION = re.compile(r"[!?.,;:\"()\[\]{}¿¡…]")


def normalize_phrase(text: str) -> str:
    """Lower case, NFC, no punctuation, single spaces: the form engines and judges compare."""
    text = unicodedata.normalize("NFC", text).replace("’", "'").lower()
    text = _PUNCTUATION.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


class VocabularyFile(BaseModel):
    """A packaged vocabulary: phrases per command for one language, plus filler words."""

    model_config = ConfigDict(extra="forbid")

    language: str = Field(min_length=2)
    commands: dict[Command, list[str]]
    garbage: list[str] = Field(default_factory=list)


class LanguageOverride(BaseModel):
    """The user's changes for one language: phrases added to or replacing a command's."""

    model_config = ConfigDict(extra="forbid")

    add: dict[Command, list[str]] = Field(default_factory=dict)
    replace: dict[Command, list[str]] = Field(default_factory=dict)


@dataclass(frozen=True)
class Vocabulary:
    """The phrases of every command in one language (normalized, each claimed once)."""

    language: str
    phrases: dict[Command, tuple[str, ...]]
    garbage: tuple[str, ...]

    def command_for(self, phrase: str) -> Command | None:
        """The command a (normalized) phrase belongs to, if any."""
        for command, phrases in self.phrases.items():
            if phrase in phrases:
                return command
        return None

    def all_phrases(self) -> list[tuple[Command, str]]:
        """Every (command, phrase) pair, in file order."""
        return [(c, p) for c, ps in self.phrases.items() for p in ps]

    def words(self) -> set[str]:
        """Every word used by a command phrase."""
        return {w for _, p in self.all_phrases() for w in p.split()}

    def restricted_to(self, known_words: Container[str]) -> tuple[Vocabulary, list[str]]:
        """A copy without the phrases that use a word outside ``known_words``; and those."""
        kept: dict[Command, tuple[str, ...]] = {}
        dropped: list[str] = []
        for command, phrases in self.phrases.items():
            ok = tuple(p for p in phrases if all(w in known_words for w in p.split()))
            dropped.extend(p for p in phrases if p not in ok)
            if ok:
                kept[command] = ok
        garbage = tuple(w for w in self.garbage if w in known_words)
        return Vocabulary(self.language, kept, garbage), dropped


def available_languages() -> list[str]:
    """Languages with a packaged vocabulary."""
    names = [entry.name for entry in resources.files("coach.listen").iterdir()]
    return sorted(n[len("vocab_") : -len(".yaml")] for n in names if n.startswith("vocab_"))


class _PhraseLoader(yaml.SafeLoader):
    """YAML without implicit booleans: YES, NO, on and off are words here."""


_PhraseLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.load(text, Loader=_PhraseLoader)
    except yaml.YAMLError as err:
        raise CoachError(f"{origin}: not valid YAML: {err}") from err


def _format_validation(err: ValidationError, origin: str) -> str:
    lines = [f"{origin}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
    return "invalid vocabulary:\n" + "\n".join(lines)


def _claim(phrases: dict[Command, list[str]], origin: str) -> dict[Command, tuple[str, ...]]:
    """Normalize phrases and reject one claimed by two commands (naming both)."""
    owner: dict[str, Command] = {}
    result: dict[Command, tuple[str, ...]] = {}
    for command, raw in phrases.items():
        seen: list[str] = []
        for text in raw:
            phrase = normalize_phrase(text)
            if not phrase:
                raise CoachError(f"{origin}: {command.value}: empty phrase {text!r}")
            other = owner.get(phrase)
            if other is not None and other != command:
                raise CoachError(
                    f"{origin}: phrase {phrase!r} is claimed by both "
                    f"{other.value} and {command.value}; keep it under one command"
                )
            owner[phrase] = command
            if phrase not in seen:
                seen.append(phrase)
        result[command] = tuple(seen)
    return result


def load_vocabulary(
    language: str, user_path: Path | None = None, *, with_user: bool = True
) -> Vocabulary:
    """The packaged vocabulary for ``language`` merged with the user's file.

    ``user_path`` defaults to ``config_dir()/vocabulary.yaml`` (ignored if absent;
    ``with_user=False`` ignores the user's file altogether). Its
    shape is ``{LANGUAGE: {add: {COMMAND: [phrases]}, replace: {COMMAND: [phrases]}}}``.
    """
    from coach.paths import config_dir

    languages = available_languages()
    if language not in languages:
        raise CoachError(
            f"no vocabulary for language {language!r}; available: {', '.join(languages)}"
        )
    origin = f"vocab_{language}.yaml"
    text = resources.files("coach.listen").joinpath(origin).read_text(encoding="utf-8")
    try:
        base = VocabularyFile.model_validate(_read_yaml(text, origin))
    except ValidationError as err:
        raise CoachError(_format_validation(err, origin)) from err
    merged: dict[Command, list[str]] = {c: list(p) for c, p in base.commands.items()}

    explicit = user_path is not None
    path = user_path if user_path is not None else config_dir() / USER_VOCABULARY_NAME
    if not with_user:
        pass
    elif path.exists():
        origin = str(path)
        raw = _read_yaml(path.read_text(encoding="utf-8"), origin) or {}
        if not isinstance(raw, dict):
            raise CoachError(f"{origin}: expected a mapping of language -> add/replace")
        section = raw.get(language)
        if section is not None:
            try:
                override = LanguageOverride.model_validate(section)
            except ValidationError as err:
                raise CoachError(_format_validation(err, f"{origin}: {language}")) from err
            for command, phrases in override.replace.items():
                merged[command] = list(phrases)
            for command, phrases in override.add.items():
                merged.setdefault(command, []).extend(phrases)
    elif explicit:
        raise CoachError(f"vocabulary file not found: {path}")

    claimed = _claim(merged, origin)
    single_word_phrases = {p for ps in claimed.values() for p in ps if " " not in p}
    garbage = tuple(
        dict.fromkeys(
            g
            for g in (normalize_phrase(w) for w in base.garbage)
            if g and g not in single_word_phrases
        )
    )
    return Vocabulary(language, {c: p for c, p in claimed.items() if p}, garbage)
