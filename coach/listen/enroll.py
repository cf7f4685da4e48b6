"""The user's own recordings of command phrases (``coach enroll``), stored per language."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from coach.errors import CoachError
from coach.listen.vad import Segmenter

if TYPE_CHECKING:
    from coach.listen.embedding import FrontEnd

ENROLLMENT_DIR = "enrollment"
"""Folder in ``coach.paths.data_dir()`` holding one file pair per language."""
KIND = "embedding-v1"
"""What the stored templates are: normalised speech embeddings (``coach.listen.embedding``)."""
TEMPLATE_STEPS = 6
"""Embeddings (80 ms apart, 1.2 s of audio) kept per take, ending just after the word."""
DEFAULT_MAX_DISTANCE = 0.22
"""Mean cosine distance between embedding windows below which live speech matches a take.
``scripts/bench_spotter.py --enroll-study`` on the real one-speaker TUNING recordings, three
"stop" takes enrolled: other takes of "stop" lay at median 0.20 (p95 0.32), other words at
median 0.28 (p5 0.14). Between the two medians; the spotter also asks its head to agree."""
LEAD_SAMPLES = 24_000
"""Quiet audio put before a take, so its first template step has a whole window."""


class Normaliser(Protocol):
    """Scales embeddings as the spotter model does (``SpotterModel.normalise``)."""

    def normalise(self, embeddings: NDArray[np.float32]) -> NDArray[np.float32]:
        """Embeddings scaled as in training."""
        ...


def cosine_distance(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Mean over steps of 1 - cosine similarity of two (steps, 96) embedding windows."""
    dot = (a * b).sum(axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-9
    return float(np.mean(1.0 - dot / norms))


@dataclass
class Enrollment:
    """Recorded takes per phrase (embedding windows) and the distance that counts as a match."""

    language: str
    templates: dict[str, list[NDArray[np.float32]]] = field(default_factory=dict)
    max_distance: float = DEFAULT_MAX_DISTANCE
    """Live speech this close (``cosine_distance``) to a take of a phrase is that phrase."""

    def add_take(self, phrase: str, pcm: NDArray[np.int16], front_end: FrontEnd,
                 model: Normaliser) -> NDArray[np.float32]:
        """Store one recording of ``phrase`` (16 kHz int16, the word with silence around).

        The word's end is found by the energy segmenter; the template is the window of
        ``TEMPLATE_STEPS`` embeddings whose last one ends 80-160 ms after it, the moment
        the spotter's own head fires on a command.
        """
        from coach.listen.embedding import STEP_SAMPLES, embedding_end_sample

        take = np.asarray(pcm, np.int16).reshape(-1)
        rng = np.random.default_rng(len(take))
        quiet = (rng.standard_normal(LEAD_SAMPLES + len(take) + 16_000) * 3.0).astype(np.int16)
        padded = quiet.copy()
        padded[LEAD_SAMPLES : LEAD_SAMPLES + len(take)] += take
        segmenter = Segmenter()
        pieces = segmenter.accept(padded) + segmenter.flush()
        if not pieces:
            raise CoachError(f"the recording of {phrase!r} holds no clear word; try again")
        end_sample = pieces[-1].end_ms * 16 + STEP_SAMPLES
        embeddings = model.normalise(front_end.embed_clip(padded))
        last = next((k for k in range(len(embeddings))
                     if embedding_end_sample(k) >= end_sample), None)
        if last is None or last < TEMPLATE_STEPS - 1:
            raise CoachError(f"the recording of {phrase!r} holds no clear word; try again")
        window = np.asarray(embeddings[last - TEMPLATE_STEPS + 1 : last + 1], np.float32)
        self.templates.setdefault(phrase, []).append(window)
        return window

    def nearest(self, window: NDArray[np.float32], phrases: Mapping[str, str]
                ) -> tuple[str | None, float]:
        """The enrolled phrase (among ``phrases``) closest to the end of a live ``window``
        of normalised embeddings, and its distance."""
        live = window[-TEMPLATE_STEPS:]
        best: tuple[str | None, float] = (None, float("inf"))
        for phrase, takes in self.templates.items():
            if phrase not in phrases:
                continue
            for take in takes:
                if take.shape != live.shape:
                    continue
                distance = cosine_distance(live, take)
                if distance < best[1]:
                    best = (phrase, distance)
        return best

    def calibrate(self) -> float:
        """Lower ``max_distance`` below the closest pair of takes of different phrases.

        Three takes are too few to estimate a speaker's own spread, so the limit starts
        from the measured default and only shrinks when two enrolled phrases sound alike.
        """
        other: list[float] = []
        items = [(p, t) for p, ts in self.templates.items() for t in ts]
        for i, (phrase, a) in enumerate(items):
            other += [cosine_distance(a, b) for phrase_b, b in items[i + 1 :]
                      if phrase_b != phrase]
        self.max_distance = DEFAULT_MAX_DISTANCE
        if other:
            self.max_distance = min(DEFAULT_MAX_DISTANCE, 0.9 * float(np.min(other)))
        return self.max_distance


class EnrollmentStore:
    """Reads and writes enrollments under ``folder`` (default ``data_dir()/enrollment``)."""

    def __init__(self, folder: Path | None = None) -> None:
        if folder is None:
            from coach.paths import data_dir

            folder = data_dir() / ENROLLMENT_DIR
        self.folder = folder

    def _paths(self, language: str) -> tuple[Path, Path]:
        return self.folder / f"{language}.json", self.folder / f"{language}.npz"

    def load(self, language: str) -> Enrollment | None:
        """The stored enrollment for ``language``, or None if the user never enrolled."""
        index_path, data_path = self._paths(language)
        if not index_path.is_file() or not data_path.is_file():
            return None
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            if index.get("kind") != KIND:
                raise ValueError("it was made by an older coach")
            with np.load(data_path, allow_pickle=False) as data:
                templates = {
                    phrase: [np.asarray(data[key], np.float32) for key in keys]
                    for phrase, keys in index["phrases"].items()
                }
        except (OSError, ValueError, KeyError) as err:
            raise CoachError(
                f"enrollment in {self.folder} is unreadable ({err}); run `coach enroll` again"
            ) from err
        return Enrollment(language, templates, float(index["max_distance"]))

    def save(self, enrollment: Enrollment) -> Path:
        """Write ``enrollment`` atomically; the index file's path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        index_path, data_path = self._paths(enrollment.language)
        arrays: dict[str, NDArray[np.float32]] = {}
        keys: dict[str, list[str]] = {}
        for phrase, takes in enrollment.templates.items():
            for take in takes:
                key = f"t{len(arrays)}"
                arrays[key] = np.asarray(take, np.float32)
                keys.setdefault(phrase, []).append(key)
        index = {"kind": KIND, "language": enrollment.language,
                 "max_distance": enrollment.max_distance, "phrases": keys}
        for path, write in (
            (data_path, lambda f: np.savez_compressed(f, **arrays)),  # type: ignore[arg-type]
            (index_path, lambda f: f.write(json.dumps(index, indent=1).encode())),
        ):
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, path)
        return index_path

    def remove(self, language: str) -> bool:
        """Delete the enrollment for ``language``; whether there was one."""
        found = False
        for path in self._paths(language):
            if path.exists():
                path.unlink()
                found = True
        return found
