"""Enrollment: the store round-trips, and the spotter matches a user's own recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coach.commands.enroll import capture_take
from coach.errors import CoachError
from coach.listen.enroll import Enrollment, EnrollmentStore
from coach.listen.spotter import SpotterEngine
from coach.listen.vad import Segmenter, word_span_ms
from coach.listen.vocabulary import load_vocabulary
from tests.spotter_support import needs_espeak, say, stream_with


def test_store_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    enrollment = Enrollment("en", {
        "stop": [rng.standard_normal((40, 32)).astype(np.float32) for _ in range(3)],
        "that hurts": [rng.standard_normal((70, 32)).astype(np.float32)],
    }, max_distance=1.7)
    store = EnrollmentStore(tmp_path / "enrollment")
    store.save(enrollment)
    loaded = store.load("en")
    assert loaded is not None
    assert loaded.max_distance == pytest.approx(1.7)
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


@needs_espeak
@pytest.mark.speech
def test_capture_take_finds_the_word() -> None:
    pcm = stream_with(say("pause"), 1200, 4000)
    blocks = iter([pcm[i : i + 320] for i in range(0, len(pcm), 320)])
    utterance = capture_take(blocks)
    assert utterance is not None
    assert 1100 <= utterance.start_ms <= 1300


@needs_espeak
@pytest.mark.speech
def test_enrolled_voice_is_matched(tmp_path: Path) -> None:
    """After enrollment the user's own takes are matched by DTW (distance within the limit)."""
    voice = "en-us+m5"
    enrollment = Enrollment("en")
    for rate in (140, 160, 180):
        enrollment.add_take("resume", stream_with(say("resume", voice, rate), 300, 1500))
        enrollment.add_take("help", stream_with(say("help", voice, rate), 300, 1500))
    enrollment.calibrate()
    store = EnrollmentStore(tmp_path)
    store.save(enrollment)
    loaded = store.load("en")
    vocabulary = load_vocabulary("en")
    engine = SpotterEngine(vocabulary, enrollment=loaded)
    pcm = stream_with(say("resume", voice, 170), 800, 2500)
    segmenter = Segmenter()
    decisions = [engine.decide(u.pcm, word_span_ms(u))
                 for u in segmenter.accept(pcm) + segmenter.flush()]
    assert loaded is not None
    assert [d.phrase for d in decisions] == ["resume"]
    distance = decisions[0].enrolled_distance
    assert distance is not None
    assert distance <= loaded.max_distance


def test_phrase_known_only_from_enrollment() -> None:
    """A user phrase outside the packaged model is kept when enrolled, and decisions work."""
    from coach.listen.commands import Command
    from coach.listen.vocabulary import Vocabulary

    vocabulary = Vocabulary("en", {Command.STOP: ("stop right there",)}, ())
    rng = np.random.default_rng(4)
    enrollment = Enrollment("en", {"stop right there": [
        10 * rng.standard_normal((60, 32)).astype(np.float32)]})  # far from any sound
    engine = SpotterEngine(vocabulary, enrollment=enrollment)
    assert engine.vocabulary.phrases == {Command.STOP: ("stop right there",)}
    quiet = (rng.standard_normal(16_000) * 20).astype(np.int16)
    assert engine.decide(quiet).phrase == "[unk]"
    with pytest.raises(CoachError, match="knows none"):
        SpotterEngine(vocabulary)
