"""Command vocabularies: packaged phrases, the user's additions, conflict errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from coach.errors import CoachError
from coach.listen import Command
from coach.listen.engine import Word
from coach.listen.judge import judge_words
from coach.listen.vocabulary import load_vocabulary, normalize_phrase


def test_packaged_vocabularies_cover_every_command() -> None:
    for language in ("en", "ko"):
        vocabulary = load_vocabulary(language, with_user=False)
        assert set(vocabulary.phrases) == set(Command)
    en = load_vocabulary("en", with_user=False)
    assert en.command_for("yes") is Command.YES  # not YAML's boolean
    assert en.command_for("no") is Command.NO
    assert en.command_for("that's enough") is Command.END
    assert "on" in en.garbage


def test_user_phrases_are_added_and_replaced(tmp_path: Path) -> None:
    user = tmp_path / "vocabulary.yaml"
    user.write_text("en:\n  add:\n    PAIN: [Argh!]\n  replace:\n    NEXT: [onwards]\n")
    vocabulary = load_vocabulary("en", user)
    assert vocabulary.command_for("argh") is Command.PAIN
    assert vocabulary.phrases[Command.NEXT] == ("onwards",)


def test_the_users_config_dir_file_is_read(tmp_path: Path) -> None:
    from coach.paths import config_dir

    config_dir().mkdir(parents=True, exist_ok=True)
    (config_dir() / "vocabulary.yaml").write_text("ko:\n  add:\n    STOP: [그만둬]\n")
    assert load_vocabulary("ko").command_for("그만둬") is Command.STOP


def test_a_phrase_claimed_by_two_commands_is_rejected_naming_both(tmp_path: Path) -> None:
    user = tmp_path / "vocabulary.yaml"
    user.write_text("en:\n  add:\n    NEXT: [stop]\n")
    with pytest.raises(CoachError, match=r"'stop' is claimed by both STOP and NEXT"):
        load_vocabulary("en", user)


def test_bad_user_files_are_clear_errors(tmp_path: Path) -> None:
    user = tmp_path / "vocabulary.yaml"
    user.write_text("en:\n  add:\n    OUCH: [ow]\n")
    with pytest.raises(CoachError, match="OUCH"):
        load_vocabulary("en", user)
    with pytest.raises(CoachError, match="not found"):
        load_vocabulary("en", tmp_path / "missing.yaml")
    with pytest.raises(CoachError, match="no vocabulary for language 'xx'"):
        load_vocabulary("xx")


def test_normalization() -> None:
    assert normalize_phrase("  That’s   ENOUGH! ") == "that's enough"


def _words(*spec: tuple[str, int, int, float]) -> tuple[Word, ...]:
    return tuple(Word(t, s, e, c) for t, s, e, c in spec)


def test_the_judge_wants_the_whole_utterance_to_be_the_command() -> None:
    en = load_vocabulary("en", with_user=False)
    assert judge_words(_words(("pain", 100, 500, 0.9)), en) is not None
    # One filler word is tolerated for the urgent commands only.
    assert judge_words(_words(("oh", 0, 90, 1.0), ("stop", 100, 500, 0.9)), en) is not None
    assert judge_words(_words(("oh", 0, 90, 1.0), ("next", 100, 500, 0.9)), en) is None
    # A sentence containing a command word is not a command.
    sentence = _words(("stop", 0, 300, 1.0), ("if", 300, 400, 1.0), ("you", 400, 500, 1.0),
                      ("feel", 500, 700, 1.0), ("pain", 700, 1000, 1.0))
    assert judge_words(sentence, en) is None
    # Low confidence, or a "word" far too long to be one: other speech forced onto it.
    assert judge_words(_words(("next", 100, 500, 0.5)), en) is None
    assert judge_words(_words(("pain", 100, 2500, 1.0)), en) is None
    # "ouch, stop" is PAIN; two unrelated commands are nothing.
    mixed = judge_words(_words(("ouch", 0, 300, 0.9), ("stop", 350, 700, 0.9)), en)
    assert mixed is not None and mixed.command is Command.PAIN
    assert judge_words(_words(("next", 0, 300, 0.9), ("repeat", 350, 700, 0.9)), en) is None
