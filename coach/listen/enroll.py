"""The user's own recordings of command phrases (``coach enroll``), stored per language."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from coach.errors import CoachError
from coach.listen.features import dtw_distance, log_mel, template
from coach.listen.vad import FRAME_MS, WORD_TAIL_MS, Segmenter

ENROLLMENT_DIR = "enrollment"
"""Folder in ``coach.paths.data_dir()`` holding one file pair per language."""
DEFAULT_MAX_DISTANCE = 4.5
"""DTW distance (log-mel units) below which an utterance matches a take. Measured on the
real one-speaker TUNING recordings with 3 enrolled "stop" takes: other takes of "stop"
lay at 3.0-7.0 (median 4.0), other words at 5.5 and above."""


@dataclass
class Enrollment:
    """Recorded takes per phrase (log-mel templates) and the distance that counts as a match."""

    language: str
    templates: dict[str, list[NDArray[np.float32]]] = field(default_factory=dict)
    max_distance: float = DEFAULT_MAX_DISTANCE
    """An utterance this close (DTW) to a take of a phrase is heard as that phrase."""

    def add_take(self, phrase: str, pcm: NDArray[np.int16]) -> NDArray[np.float32]:
        """Store one recording of ``phrase`` (16 kHz int16, the word with silence around).

        The word is cut out as the spotter cuts it from a stream (same segmenter), so a
        take and a live utterance are compared like for like.
        """
        segmenter = Segmenter()
        pieces = segmenter.accept(np.asarray(pcm, np.int16)) + segmenter.flush()
        if not pieces:
            raise CoachError(f"the recording of {phrase!r} holds no clear word; try again")
        first, last = pieces[0], pieces[-1]
        mel = log_mel(np.asarray(pcm, np.int16))
        start = first.start_ms // FRAME_MS
        end = min(len(mel), (last.end_ms + WORD_TAIL_MS) // FRAME_MS)
        features = template(mel[start:end])
        if len(features) < 10:
            raise CoachError(f"the recording of {phrase!r} holds no clear word; try again")
        self.templates.setdefault(phrase, []).append(features)
        return features

    def calibrate(self) -> float:
        """Lower ``max_distance`` below the closest pair of takes of different phrases.

        Three takes are too few to estimate a speaker's own spread, so the limit starts
        from the measured default and only shrinks when two enrolled phrases sound alike.
        """
        other: list[float] = []
        items = [(p, t) for p, ts in self.templates.items() for t in ts]
        for i, (phrase, a) in enumerate(items):
            other += [dtw_distance(a, b) for phrase_b, b in items[i + 1 :] if phrase_b != phrase]
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
        index = {"language": enrollment.language, "max_distance": enrollment.max_distance,
                 "phrases": keys}
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
