"""The model view coach hands to Vosk: links to the model, a trimmed word table and graph,
no dither.

Structural tests on a copy of the real model's layout (big files stubbed); the real model
decoding through a view is tested in test_listen_vosk.py, and through a trimmed graph in
test_listen_graph_trim.py.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from models_support import build_skeleton, real_model_dir

from coach.listen.lexicon import Lexicon, fst_output_table, model_lexicon
from coach.listen.vosk_view import (
    LEFTOVER_AGE_S,
    SPECIAL_WORDS,
    ViewError,
    model_view,
    prune_views,
    word_table_fst,
)

WORDS = ["아파", "멈춰", "다음", "<UNK>"]


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    """The real model's word table (503,352 words)."""
    found = model_lexicon(real_model_dir())
    assert found is not None
    return found


def test_a_word_table_fst_lists_exactly_the_words_given_with_their_ids(tmp_path: Path) -> None:
    ids = {"아파": 258_001, "멈춰": 5, "<eps>": 0, "next": 503_350}
    path = tmp_path / "Gr.fst"
    path.write_bytes(word_table_fst(ids))
    table = Lexicon(fst_output_table(path), "fst")
    assert table.keys([*list(ids), "다음", "아"]) == ids


def test_a_view_keeps_the_grammar_words_with_the_models_ids(
    tmp_path: Path, lexicon: Lexicon
) -> None:
    model = build_skeleton(tmp_path / "model")
    view = model_view(model, [*WORDS, "not-a-word"], lexicon, tmp_path / "views")
    trimmed = Lexicon(fst_output_table(view / "graph" / "Gr.fst"), "fst")
    expected = lexicon.keys(WORDS + list(SPECIAL_WORDS))
    assert trimmed.keys(WORDS + list(SPECIAL_WORDS) + ["not-a-word", "좋아요"]) == expected
    assert set(WORDS) <= set(expected) and "<eps>" in expected
    assert (view / "graph" / "Gr.fst").stat().st_size < 4096


def test_a_view_links_every_other_file_and_turns_dither_off(
    tmp_path: Path, lexicon: Lexicon
) -> None:
    model = build_skeleton(tmp_path / "model")
    view = model_view(model, WORDS, lexicon, tmp_path / "views")
    for file in model.rglob("*"):
        if file.is_file() and file.name not in ("Gr.fst", "mfcc.conf"):
            seen = view / file.relative_to(model)
            assert seen.resolve() == file.resolve() and seen.read_bytes() == file.read_bytes()
    options = (view / "conf" / "mfcc.conf").read_text().splitlines()
    original = (model / "conf" / "mfcc.conf").read_text().splitlines()
    assert options == [*original, "--dither=0"]
    assert not (view / "graph" / "Gr.fst").is_symlink()


def test_a_view_is_built_once_and_rebuilt_when_the_model_changes(
    tmp_path: Path, lexicon: Lexicon
) -> None:
    model = build_skeleton(tmp_path / "model")
    views = tmp_path / "views"
    first = model_view(model, WORDS, lexicon, views)
    built = (first / "conf" / "mfcc.conf").stat().st_mtime_ns
    assert model_view(model, list(reversed(WORDS)), lexicon, views) == first
    assert (first / "conf" / "mfcc.conf").stat().st_mtime_ns == built
    assert model_view(model, WORDS[:2], lexicon, views) != first
    (model / "conf" / "mfcc.conf").write_text("--use-energy=false\n")
    changed = model_view(model, WORDS, lexicon, views)
    assert changed != first
    assert (changed / "conf" / "mfcc.conf").read_text() == "--use-energy=false\n--dither=0\n"
    (model / "graph" / "HCLr.fst").write_bytes(b"another graph")
    assert model_view(model, WORDS, lexicon, views) not in (first, changed)
    assert not list(views.glob(".*.tmp")) and not list(views.glob(".*.hcl"))


def test_a_view_whose_links_broke_is_built_again(tmp_path: Path, lexicon: Lexicon) -> None:
    model = build_skeleton(tmp_path / "model")
    view = model_view(model, WORDS, lexicon, tmp_path / "views")
    (view / "am").unlink()
    (view / "am").symlink_to(tmp_path / "gone")
    again = model_view(model, WORDS, lexicon, tmp_path / "views")
    assert again == view and (again / "am" / "final.mdl").is_file()


def test_views_built_at_once_by_several_builders_all_end_up_complete(
    tmp_path: Path, lexicon: Lexicon
) -> None:
    model = build_skeleton(tmp_path / "model")
    views = tmp_path / "views"
    start = threading.Barrier(4)

    def build() -> Path:
        start.wait()
        return model_view(model, WORDS, lexicon, views)

    with ThreadPoolExecutor(4) as pool:
        built = list(pool.map(lambda _: build(), range(4)))
    assert len(set(built)) == 1
    assert [p.name for p in views.iterdir()] == [built[0].name]
    assert (built[0] / "conf" / "mfcc.conf").read_text().endswith("--dither=0\n")


def test_a_model_without_a_binary_word_table_keeps_its_own_grammar(tmp_path: Path) -> None:
    model = build_skeleton(tmp_path / "model")
    view = model_view(model, WORDS, None, tmp_path / "views")
    assert (view / "graph" / "Gr.fst").resolve() == (model / "graph" / "Gr.fst").resolve()
    assert (view / "conf" / "mfcc.conf").read_text().endswith("--dither=0\n")


def test_a_graph_that_cannot_be_trimmed_for_another_reason_is_a_view_error(
    tmp_path: Path, lexicon: Lexicon, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_skeleton(tmp_path / "model")
    monkeypatch.setattr(sys, "executable", shutil.which("false"))  # the trimmer fails
    with pytest.raises(ViewError, match=r"could not trim .*HCLr\.fst: exit status 1"):
        model_view(model, WORDS, lexicon, tmp_path / "views")
    assert [p.name for p in (tmp_path / "views").iterdir()] == []


def test_a_cache_that_is_a_file_is_a_view_error(tmp_path: Path, lexicon: Lexicon) -> None:
    model = build_skeleton(tmp_path / "model")
    (tmp_path / "views").write_text("not a folder")
    with pytest.raises(ViewError, match=str(tmp_path / "views")):
        model_view(model, WORDS, lexicon, tmp_path / "views")


def test_views_of_a_model_that_is_gone_and_dead_builders_leftovers_are_pruned(
    tmp_path: Path, lexicon: Lexicon
) -> None:
    kept_model = build_skeleton(tmp_path / "kept")
    gone_model = build_skeleton(tmp_path / "gone")
    views = tmp_path / "views"
    kept = model_view(kept_model, WORDS, lexicon, views)
    gone = model_view(gone_model, WORDS, lexicon, views)
    shutil.rmtree(gone_model)
    dead = views / ".dead-builder.tmp"
    dead.mkdir()
    old = time.time() - LEFTOVER_AGE_S - 60
    os.utime(dead, (old, old))
    at_work = views / ".busy-builder.tmp"
    at_work.mkdir()
    other = model_view(kept_model, WORDS[:2], lexicon, views)  # building one prunes
    assert sorted(p.name for p in views.iterdir()) == sorted(
        [kept.name, other.name, at_work.name]
    )
    assert not gone.exists() and not dead.exists()
    assert prune_views(views) == []
    assert prune_views(tmp_path / "no-views-yet") == []
