"""Enrollment: the store round-trips, and the spotter matches a user's own recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coach.commands.enroll import capture_take
from coach.errors import CoachError
from coach.listen.embedding import FrontEnd
from coach.listen.enroll import TEMPLATE_STEPS, Enrollment, EnrollmentStore
from coach.listen.spotter import SpotterEngine, SpotterModel
from coach.listen.vocabulary import load_vocabulary
from tests.spotter_support import needs_espeak, needs_front_end, say, stream_with


def test_store_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    enrollment = Enrollment("en", {
        "stop": [rng.standard_normal((TEMPLATE_STEPS, 96)).astype(np.float32) for _ in range(3)],
        "that hurts": [rng.standard_normal((TEMPLATE_STEPS, 96)).astype(np.float32)],
    }, max_distance=0.17)
    store = EnrollmentStore(tmp_path / "enrollment")
    store.save(enrollment)
    loaded = store.load("en")
    assert loaded is not None
    assert loaded.max_distance == pytest.approx(0.17)
    assert set(loaded.templates) == {"stop", "that hurts"}
    for phrase, takes in enrollment.templates.items():
        assert len(loaded.templates[phrase]) == len(takes)
        for a, b in zip(takes, loaded.templates[phrase], strict=True):
            np.testing.assert_array_equal(a, b)
    assert store.load("ko") is None
    assert store.remove("en")
    assert store.load("en") is None


def test_default_store_lives_in_data_dir() -> None:
    from coach.paths import data_dir

    assert EnrollmentStore().folder == data_dir() / "enrollment"


def test_unreadable_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "en.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "en.npz").write_bytes(b"junk")
    with pytest.raises(CoachError, match="coach enroll"):
        EnrollmentStore(tmp_path).load("en")


def test_enrollment_of_an_older_coach_asks_to_enroll_again(tmp_path: Path) -> None:
    """Log-mel templates of the previous spotter cannot be matched: say so."""
    store = EnrollmentStore(tmp_path)
    store.save(Enrollment("en", {"stop": [np.zeros((40, 32), np.float32)]}))
    index = json.loads((tmp_path / "en.json").read_text(encoding="utf-8"))
    del index["kind"]
    (tmp_path / "en.json").write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(CoachError, match=r"older coach.*coach enroll"):
        store.load("en")


@needs_espeak
@pytest.mark.speech
def test_capture_take_finds_the_word() -> None:
    pcm = stream_with(say("pause"), 1200, 4000)
    blocks = iter([pcm[i : i + 320] for i in range(0, len(pcm), 320)])
    utterance = capture_take(blocks)
    assert utterance is not None
    assert 1100 <= utterance.start_ms <= 1300


@needs_front_end
@needs_espeak
@pytest.mark.speech
def test_enrolled_voice_is_matched(tmp_path: Path) -> None:
    """With the packaged head switched off (thresholds above 1), only the user's own
    takes can make the spotter hear 'resume': it does, and not for 'help'."""
    voice = "en-us+m5"
    front_end, model = FrontEnd(), SpotterModel.load()
    enrollment = Enrollment("en")
    for rate in (140, 160, 180):
        for phrase in ("resume", "help"):
            take = stream_with(say(phrase, voice, rate), 300, 1500)
            enrollment.add_take(phrase, take, front_end, model)
    enrollment.calibrate()
    store = EnrollmentStore(tmp_path)
    store.save(enrollment)
    loaded = store.load("en")
    assert loaded is not None
    vocabulary = load_vocabulary("en")
    off = {c: 1.01 for c in set(model.commands)}
    engine = SpotterEngine(vocabulary, model, enrollment=loaded, thresholds=off,
                           front_end=front_end)
    pcm = stream_with(say("resume", voice, 170), 1500, 3500)
    for i in range(0, len(pcm), 320):
        engine.accept(pcm[i : i + 320])
    assert [d.phrase for d in engine.detections] == ["resume"]
    distance = engine.detections[0].enrolled_distance
    assert distance is not None
    assert distance <= loaded.max_distance


@needs_front_end
def test_phrase_known_only_from_enrollment() -> None:
    """A user phrase outside the packaged model is kept when enrolled; noise is not it."""
    from coach.listen.commands import Command
    from coach.listen.vocabulary import Vocabulary

    vocabulary = Vocabulary("en", {Command.STOP: ("stop right there",)}, ())
    rng = np.random.default_rng(4)
    enrollment = Enrollment("en", {"stop right there": [
        10 * rng.standard_normal((TEMPLATE_STEPS, 96)).astype(np.float32)]})  # far from sound
    engine = SpotterEngine(vocabulary, enrollment=enrollment)
    assert engine.vocabulary.phrases == {Command.STOP: ("stop right there",)}
    quiet = (rng.standard_normal(16_000 * 3) * 20).astype(np.int16)
    assert engine.accept(quiet) == []
    with pytest.raises(CoachError, match="knows none"):
        SpotterEngine(vocabulary)
