"""Which words a Kaldi/Vosk model can recognize: membership tests on its symbol table's bytes.

Parsing the whole table entry by entry (503,352 words in the small Korean model) took 1.1 s
of interpreter time while the coach was already talking, and the speaker underflowed. The
listener only asks about a few dozen words, so a lexicon finds each one in the raw bytes
(``bytes.find`` runs in C) and parses nothing else.
"""

from __future__ import annotations

import struct
from collections.abc import Container, Iterable
from pathlib import Path
from typing import BinaryIO

from coach.listen.openfst import (
    HAS_INPUT_SYMBOLS,
    HAS_OUTPUT_SYMBOLS,
    HEADER_BYTES_MAX,
    SYMBOL_TABLE_MAGIC,
    Header,
)

_SEARCH_SLICE_BYTES = 1 << 18
"""Bytes searched per call (about 0.1 ms): the audio thread gets the lock in between."""


class Lexicon(Container[str]):
    """The words of one model; ``word in lexicon`` searches the table's bytes."""

    def __init__(self, table: bytes, entry: str) -> None:
        self._table = table
        self.kind = entry
        """"fst": entries [int32 length][utf-8][int64 key]; "text": lines "word id"."""
        self._found: dict[str, int] = {}
        """Where each word asked about is in the table (-1: not there); each search scans
        megabytes, so a word is searched for once."""

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str) or not word or any(c.isspace() for c in word):
            return False
        return self._where(word) >= 0

    def _where(self, word: str) -> int:
        at = self._found.get(word)
        if at is None:
            at = self._found[word] = self._search(word)
        return at

    def _search(self, word: str) -> int:
        encoded = word.encode("utf-8")
        if self.kind == "text":
            if any(self._table.startswith(encoded + sep) for sep in (b" ", b"\t")):
                return 0
            return max(self._index(b"\n" + encoded + sep) for sep in (b" ", b"\t"))
        # Aligned by construction: a length prefix holds NUL bytes, which no UTF-8 word and
        # no key's low bytes followed by a word can imitate, so any match is a real entry.
        return self._index(struct.pack("<i", len(encoded)) + encoded)

    def keys(self, words: Iterable[str]) -> dict[str, int]:
        """The ids of those of ``words`` that the table lists (an "fst" table)."""
        if self.kind != "fst":
            raise ValueError("ids are read from a binary (fst) table only")
        found: dict[str, int] = {}
        for word in words:
            if word in self:
                after = self._where(word) + 4 + len(word.encode("utf-8"))
                (found[word],) = struct.unpack_from("<q", self._table, after)
        return found

    def _index(self, needle: bytes) -> int:
        """Where ``needle`` is in the table (-1: nowhere), searched a slice at a time: one
        ``find`` over the whole table holds the interpreter lock for up to tens of ms, and
        the speaker's callback, waiting for it, underflowed (measured: 6 of 8 starts with a
        pair of underflows as the model finished loading)."""
        table = self._table
        for start in range(0, len(table), _SEARCH_SLICE_BYTES):
            at = table.find(needle, start, start + _SEARCH_SLICE_BYTES + len(needle) - 1)
            if at >= 0:
                return at
        return -1


def model_lexicon(path: Path) -> Lexicon | None:
    """The words the model in ``path`` can recognize, or None when the folder does not say."""
    words_txt = path / "graph" / "words.txt"
    if words_txt.is_file():
        return Lexicon(b"\n".join(words_txt.read_bytes().splitlines()), "text")
    grammar = path / "graph" / "Gr.fst"
    if grammar.is_file():
        try:
            return Lexicon(fst_output_table(grammar), "fst")
        except (ValueError, struct.error, OSError):
            return None
    return None


def fst_output_table(path: Path) -> bytes:
    """The raw entries of the output symbol table in an OpenFst file's header.

    A grammar (G) is an acceptor: its input and output tables are byte for byte the same,
    so the output table is found by searching for the second table's magic number, which no
    entry can contain (0xFB is not UTF-8, and keys stay below 2**23), and comparing.
    Otherwise the output table is walked entry by entry, which is slow on a large model.
    """
    with path.open("rb") as stream:
        head = stream.read(HEADER_BYTES_MAX)
        header, at = Header.read(head)
        flags = header.flags
        if not flags & HAS_OUTPUT_SYMBOLS:
            raise ValueError("no output symbols")
        stream.seek(at)
        if not flags & HAS_INPUT_SYMBOLS:
            return _walk_table(stream)
        magic = struct.pack("<i", SYMBOL_TABLE_MAGIC)
        first = _read_until(stream, magic, skip=len(magic))
        second = stream.read(len(first))
        if second == first:
            return _entries(first)
        stream.seek(at + len(first))
        return _walk_table(stream)


def _read_until(stream: BinaryIO, marker: bytes, skip: int) -> bytes:
    """Bytes from here up to (not including) the next ``marker`` at or after ``skip``."""
    data = bytearray()
    chunk = _SEARCH_SLICE_BYTES  # small reads and searches: see Lexicon._find
    while True:
        more = stream.read(chunk)
        if not more:
            raise ValueError("truncated symbol table")
        search_from = max(skip, len(data) - len(marker) + 1)
        data += more
        end = data.find(marker, search_from)
        if end >= 0:
            stream.seek(stream.tell() - (len(data) - end))
            return bytes(data[:end])


def _table_header_size(table: bytes) -> int:
    (magic, name_length) = struct.unpack_from("<ii", table, 0)
    if magic != SYMBOL_TABLE_MAGIC or not 0 <= name_length < 1024:
        raise ValueError("no symbol table")
    return 8 + int(name_length) + 16  # magic, name, available key, size


def _entries(table: bytes) -> bytes:
    """A whole symbol table without its header."""
    return table[_table_header_size(table) :]


def _walk_table(stream: BinaryIO) -> bytes:
    """Read one symbol table entry by entry (the exact, slow way); its entries' bytes."""
    head = _read_exact(stream, 8)
    (_magic, name_length) = struct.unpack("<ii", head)
    rest = _read_exact(stream, max(0, name_length) + 16)
    _table_header_size(head + rest)
    (size,) = struct.unpack_from("<q", rest, len(rest) - 8)
    entries = bytearray()
    for _ in range(size):
        length = _read_exact(stream, 4)
        (n,) = struct.unpack("<i", length)
        if not 0 <= n < 1 << 20:
            raise ValueError("bad string length")
        entries += length + _read_exact(stream, n + 8)
    return bytes(entries)


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ValueError("truncated")
    return data
