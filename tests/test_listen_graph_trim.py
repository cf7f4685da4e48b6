"""Trimming a model's lookahead graph (HCLr.fst) to a grammar's words.

A hand-made graph checks what is kept and the lookahead intervals worked out for it; the
real Korean model checks that Vosk decodes a trimmed graph exactly as it decodes the whole.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from listen_support import (
    assert_same_results,
    concat,
    ko_model_dir,
    noise,
    require_espeak,
    silence,
    speak,
)

from coach.listen.graph_trim import EXIT_NOT_TRIMMABLE, main, trim_lookahead
from coach.listen.lexicon import model_lexicon
from coach.listen.openfst import (
    ARC,
    STATE,
    FormatError,
    Header,
    LookaheadFst,
    read_lookahead,
    write_lookahead,
)
from coach.listen.vocabulary import load_vocabulary
from coach.listen.vosk_view import SPECIAL_WORDS, model_view

FINAL_LABEL = 10
INF = math.inf
ACCESSIBLE, NOT_ACCESSIBLE, COACCESSIBLE = 1 << 40, 1 << 41, 1 << 42
OLABEL_SORTED, NOT_ACCEPTOR = 1 << 30, 1 << 17

# state: (final weight, [(ilabel, olabel, weight, next state), ...]), arcs sorted by olabel
GRAPH: list[tuple[float, list[tuple[int, int, float, int]]]] = [
    (INF, [(1, 0, 0.5, 1), (2, 3, 0.25, 2), (4, 7, 0.0, 3)]),  # 0: start
    (INF, [(1, 0, 0.1, 1), (5, 5, 0.0, 4)]),  # 1: a self-loop, then word 5
    (INF, [(6, 0, 0.0, 4)]),  # 2: after word 3
    (INF, [(6, 0, 0.0, 5)]),  # 3: after word 7, toward a dead end
    (0.0, [(7, 0, 0.0, 0)]),  # 4: the end, and back to the start
    (INF, []),  # 5: a dead end (not final)
    (0.5, [(8, 5, 0.0, 4)]),  # 6: not reachable from the start
]


def _graph_bytes(graph: list[tuple[float, list[tuple[int, int, float, int]]]]) -> bytes:
    states = np.zeros(len(graph), STATE)
    arcs = np.array([arc for _, out in graph for arc in out], ARC)
    counts = np.array([len(out) for _, out in graph])
    states["final"] = [final for final, _ in graph]
    states["narcs"] = counts
    states["pos"] = np.cumsum(counts) - counts
    properties = OLABEL_SORTED | NOT_ACCEPTOR | NOT_ACCESSIBLE
    outer = Header("olabel_lookahead", "standard", 1, 0, properties, -1, 0, 0)
    inner = Header("const", "standard", 2, 0, properties, 0, len(states), len(arcs))
    unknown = [np.array([[1, FINAL_LABEL + 1]], np.int32)] * len(states)  # all labels
    return write_lookahead(LookaheadFst(outer, inner, states, arcs, FINAL_LABEL, unknown))


def _intervals(fst: LookaheadFst) -> list[list[list[int]]]:
    return [pairs.tolist() for pairs in fst.reachable]


def test_a_graph_is_trimmed_to_the_paths_that_output_only_the_words_kept(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "HCLr.fst", tmp_path / "trimmed.fst"
    source.write_bytes(_graph_bytes(GRAPH))
    trimmed = trim_lookahead(source, [3, 5], target)
    assert (trimmed.states, trimmed.arcs, trimmed.source_states, trimmed.source_arcs) == (
        4, 6, 7, 9,
    )
    fst = read_lookahead(target.read_bytes(), with_intervals=True)
    # Word 7 leads only to a dead end; state 6 cannot be reached: states 0, 1, 2, 4 stay.
    assert fst.const_header.start == 0
    assert fst.states["final"].tolist() == [INF, INF, INF, 0.0]
    kept = [tuple(a) for a in fst.arcs.tolist()]
    assert kept == [
        (1, 0, 0.5, 1), (2, 3, 0.25, 2), (1, 0, pytest.approx(0.1), 1), (5, 5, 0.0, 3),
        (6, 0, 0.0, 3), (7, 0, 0.0, 0),
    ]
    assert fst.states["narcs"].tolist() == [2, 2, 1, 1]
    assert fst.states["pos"].tolist() == [0, 2, 4, 5]
    assert fst.states["noepsilons"].tolist() == [1, 1, 1, 1]
    assert fst.states["niepsilons"].tolist() == [0, 0, 0, 0]
    # The first word each state can output; the end is reachable silently from 2 and 4.
    assert _intervals(fst) == [
        [[3, 4], [5, 6]],
        [[5, 6]],
        [[3, 4], [5, 6], [10, 11]],
        [[3, 4], [5, 6], [10, 11]],
    ]
    assert fst.final_label == FINAL_LABEL
    properties = fst.const_header.properties
    assert properties & OLABEL_SORTED and properties & ACCESSIBLE and properties & COACCESSIBLE
    assert not properties & (NOT_ACCEPTOR | NOT_ACCESSIBLE)  # unknown now, or false
    assert fst.header.properties == properties and fst.header.fst_type == "olabel_lookahead"


def test_a_word_whose_only_path_ends_nowhere_leaves_nothing_to_keep(tmp_path: Path) -> None:
    source = tmp_path / "HCLr.fst"
    source.write_bytes(_graph_bytes(GRAPH))
    with pytest.raises(FormatError, match="no path"):
        trim_lookahead(source, [7], tmp_path / "trimmed.fst")
    assert not (tmp_path / "trimmed.fst").exists()


@pytest.mark.parametrize(
    "damage",
    ["other type", "truncated arcs", "no add-on", "relabel data", "bad next state"],
)
def test_a_graph_of_another_kind_or_damaged_is_a_format_error(
    tmp_path: Path, damage: str
) -> None:
    data = bytearray(_graph_bytes(GRAPH))
    if damage == "other type":
        data[8 : 8 + len("olabel_lookahead")] = b"ilabel_lookahead"
    elif damage == "truncated arcs":
        del data[200:]
    elif damage == "no add-on":
        end_of_arcs = len(data) - (5 + 12 + len(GRAPH) * (8 + 8 + 4))
        data[end_of_arcs + 2] = 0
    elif damage == "relabel data":
        end_of_arcs = len(data) - (5 + 12 + len(GRAPH) * (8 + 8 + 4))
        data[end_of_arcs + 4] = 1
    else:
        first_arc = len(data) - (5 + 12 + len(GRAPH) * (8 + 8 + 4)) - 9 * ARC.itemsize
        data[first_arc + 12 : first_arc + 16] = (99).to_bytes(4, "little")
    source = tmp_path / "HCLr.fst"
    source.write_bytes(bytes(data))
    with pytest.raises(FormatError):
        trim_lookahead(source, [3, 5], tmp_path / "trimmed.fst")


def test_run_as_a_program_it_says_what_it_kept_or_that_it_cannot_trim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = tmp_path / "HCLr.fst", tmp_path / "trimmed.fst"
    source.write_bytes(_graph_bytes(GRAPH))
    assert main([str(source), str(target), "3", "5"]) == 0
    assert capsys.readouterr().out.strip() == "4 of 7 states, 6 of 9 arcs"
    assert target.is_file()
    source.write_bytes(b"stub for graph/HCLr.fst")
    assert main([str(source), str(target), "3"]) == EXIT_NOT_TRIMMABLE
    assert "not an OpenFst file" in capsys.readouterr().err


# ---------------------------------------------------------------- the real Korean model


def _decode(model: Any, grammar: str, audio: np.ndarray) -> list[Any]:
    """Every partial and final result (JSON, 3 readings) of ``audio`` in 20 ms blocks."""
    import vosk

    recognizer = vosk.KaldiRecognizer(model, 16000, grammar)
    recognizer.SetWords(True)
    recognizer.SetMaxAlternatives(3)
    out: list[Any] = []
    for start in range(0, len(audio), 320):
        if recognizer.AcceptWaveform(audio[start : start + 320].tobytes()):
            out.append(json.loads(recognizer.Result()))
        else:
            out.append(json.loads(recognizer.PartialResult()))
    out.append(json.loads(recognizer.FinalResult()))
    return out


def test_vosk_decodes_the_real_models_trimmed_graph_as_the_whole(
    tmp_path: Path,
) -> None:
    require_espeak()
    import vosk

    vosk.SetLogLevel(-1)
    model = ko_model_dir()
    lexicon = model_lexicon(model)
    assert lexicon is not None
    vocabulary = load_vocabulary("ko")
    grammar = [p for _, p in vocabulary.all_phrases()] + list(vocabulary.garbage)
    words = {w for p in grammar for w in p.split()}
    view = model_view(model, words, lexicon, tmp_path / "views")
    trimmed_graph = view / "graph" / "HCLr.fst"
    assert not trimmed_graph.is_symlink()
    assert trimmed_graph.stat().st_size * 100 < (model / "graph" / "HCLr.fst").stat().st_size
    fst = read_lookahead(trimmed_graph.read_bytes())
    ids = set(lexicon.keys(sorted(words | set(SPECIAL_WORDS))).values())
    assert set(np.unique(fst.arcs["olabel"]).tolist()) <= ids
    assert {lexicon.keys([w])[w] for w in ("아파", "멈춰", "다음")} <= set(fst.arcs["olabel"])

    # The same view with the whole graph: only HCLr.fst differs.
    whole = tmp_path / "whole"
    for entry in view.iterdir():
        if entry.name != "graph":
            (whole / entry.name).parent.mkdir(parents=True, exist_ok=True)
            (whole / entry.name).symlink_to(entry.resolve() if entry.is_symlink() else entry)
    (whole / "graph").mkdir(parents=True)
    for entry in (view / "graph").iterdir():
        source = model / "graph" / "HCLr.fst" if entry.name == "HCLr.fst" else entry.resolve()
        (whole / "graph" / entry.name).symlink_to(source)

    audio = concat(
        [
            silence(300), speak("아파", "ko", 150), silence(700), speak("멈춰", "ko", 150),
            silence(700), speak("다리를 천천히 들어 올리세요", "ko", 160), silence(500),
            noise(800, 300.0, seed=3), speak("다음", "ko", 150), silence(900),
        ]
    )
    rng = np.random.default_rng(0)  # the view turns Kaldi's dither off: dither alike here
    dithered = np.clip(audio + np.rint(rng.standard_normal(audio.size)), -32768, 32767)
    audio = dithered.astype(np.int16)
    grammar_json = json.dumps(grammar, ensure_ascii=False)
    trimmed_results = _decode(vosk.Model(str(view)), grammar_json, audio)
    whole_results = _decode(vosk.Model(str(whole)), grammar_json, audio)
    heard = " ".join(r["alternatives"][0]["text"] for r in trimmed_results if r.get("alternatives"))
    assert "멈춰" in heard and ("아파" in heard or "아프다" in heard)
    assert_same_results(trimmed_results, whole_results)
