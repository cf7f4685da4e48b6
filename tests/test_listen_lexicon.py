"""Model lexicons: which words a model knows, from words.txt or an OpenFst header's symbols."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from coach.listen.lexicon import _SEARCH_SLICE_BYTES, _entries, model_lexicon
from coach.listen.openfst import FST_MAGIC, SYMBOL_TABLE_MAGIC

WORDS = ["<eps>", "다음", "그만", "no", "next", "nexts", "stop", "<UNK>", "#0", "<s>", "</s>"]


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<i", len(data)) + data


def _table(words: list[str], keys: list[int] | None = None) -> bytes:
    keys = keys if keys is not None else list(range(len(words)))
    head = struct.pack("<i", SYMBOL_TABLE_MAGIC) + _string("words.txt")
    head += struct.pack("<qq", max(keys) + 1, len(words))
    entries = (_string(w) + struct.pack("<q", k) for w, k in zip(words, keys, strict=True))
    return head + b"".join(entries)


def _fst(inputs: bytes | None, outputs: bytes | None, body: bytes) -> bytes:
    flags = (1 if inputs is not None else 0) | (2 if outputs is not None else 0)
    head = struct.pack("<i", FST_MAGIC) + _string("const") + _string("standard")
    head += struct.pack("<ii", 1, flags) + struct.pack("<qqqq", 0, 0, 1, 1)
    return head + (inputs or b"") + (outputs or b"") + body


def _model(tmp_path: Path, fst: bytes) -> Path:
    (tmp_path / "graph").mkdir(parents=True)
    (tmp_path / "graph" / "Gr.fst").write_bytes(fst)
    return tmp_path


# Arc-like bytes that hold an exact "length + word" pattern for "no": ilabel 2, then an
# olabel whose low bytes spell "no". Outside the symbol table it must not count.
BODY = struct.pack("<i", 2) + b"no\x00\x00" + struct.pack("<fi", 0.0, 7) * 50


def test_an_acceptor_grammar_knows_exactly_its_words(tmp_path: Path) -> None:
    words = [w for w in WORDS if w != "no"]
    table = _table(words)
    lexicon = model_lexicon(_model(tmp_path, _fst(table, table, BODY)))
    assert lexicon is not None
    for word in words:
        assert word in lexicon
    for word in ("no", "다", "그만그만", "nex", "ext", "[unk]", "", "next stop", 3):
        assert word not in lexicon


def test_words_across_the_search_slices_of_a_large_table_are_found(tmp_path: Path) -> None:
    """The table is searched a slice at a time (the audio thread needs the lock in
    between); an entry cut by a slice boundary, or by a read chunk, is still found."""
    filler = [f"w{i:07d}" for i in range(2 * _SEARCH_SLICE_BYTES // 19)]  # ~2 slices
    words: list[str] = []
    for i, word in enumerate(filler):
        words.append(word)
        if i % 997 == 0:
            words.append(f"다음{i}")  # multi-byte words all over, some across boundaries
    table = _table(words)
    lexicon = model_lexicon(_model(tmp_path, _fst(table, table, BODY)))
    assert lexicon is not None
    raw = _entries(table)
    crossing = [
        w
        for w in words
        if (at := raw.find(_string(w))) // _SEARCH_SLICE_BYTES
        != (at + len(_string(w)) - 1) // _SEARCH_SLICE_BYTES
    ]
    assert crossing, "no word straddles a slice boundary: the test proves nothing"
    for word in crossing + words[:: len(words) // 50] + [words[-1]]:
        assert word in lexicon
    for word in ("w9999999", "다음1", "다음", "w000000"):
        assert word not in lexicon


def test_different_input_and_output_tables_are_read_entry_by_entry(tmp_path: Path) -> None:
    inputs = _table(["<eps>", "a", "b"])
    outputs = _table(["<eps>", "stop", "다음"], keys=[0, 5, 9])
    lexicon = model_lexicon(_model(tmp_path, _fst(inputs, outputs, BODY)))
    assert lexicon is not None
    assert "stop" in lexicon and "다음" in lexicon
    assert "a" not in lexicon and "no" not in lexicon


def test_an_output_table_alone_is_read(tmp_path: Path) -> None:
    lexicon = model_lexicon(_model(tmp_path, _fst(None, _table(["<eps>", "pain"]), BODY)))
    assert lexicon is not None
    assert "pain" in lexicon and "pai" not in lexicon


@pytest.mark.parametrize(
    "fst",
    [
        b"not an fst at all",
        _fst(None, None, BODY),  # no output symbols
        _fst(_table(["a", "b"]), _table(["a", "b"]), BODY)[:60],  # truncated in a table
        _fst(None, _table(["<eps>", "pain", "stop"]), b"")[:-30],  # truncated table
    ],
)
def test_a_grammar_that_does_not_say_gives_no_lexicon(tmp_path: Path, fst: bytes) -> None:
    assert model_lexicon(_model(tmp_path, fst)) is None


def test_words_txt_is_the_lexicon_when_the_graph_has_one(tmp_path: Path) -> None:
    (tmp_path / "graph").mkdir()
    lines = "".join(f"{w} {i}\n" for i, w in enumerate(WORDS))
    (tmp_path / "graph" / "words.txt").write_text(lines + "tabbed\t99\r\n", encoding="utf-8")
    lexicon = model_lexicon(tmp_path)
    assert lexicon is not None
    for word in [*WORDS, "tabbed"]:
        assert word in lexicon
    for word in ("nex", "다", "0", "1", "tabbed\t99", "[unk]"):
        assert word not in lexicon


def test_a_model_without_a_vocabulary_file_gives_no_lexicon(tmp_path: Path) -> None:
    (tmp_path / "graph").mkdir()
    assert model_lexicon(tmp_path) is None
