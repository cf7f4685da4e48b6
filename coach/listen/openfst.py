"""The OpenFst binary format, as far as coach reads and writes it.

Vosk models are Kaldi graphs stored as OpenFst files. coach reads their headers (which
word table a model has), writes small word-table FSTs for model views, and reads and writes
the ``olabel_lookahead`` FST a model's run-time grammars are composed with
(``graph/HCLr.fst``, see coach/listen/graph_trim.py). Everything is little-endian, as
OpenFst writes it on every platform Vosk ships for.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

import numpy as np

FST_MAGIC = 2125659606
SYMBOL_TABLE_MAGIC = 2125658996
ADD_ON_MAGIC = 446681434
"""Follows the outer header of an FST with add-on data (a lookahead FST is one)."""

HAS_INPUT_SYMBOLS = 1
HAS_OUTPUT_SYMBOLS = 2
IS_ALIGNED = 4
"""Header flags."""

ALIGNMENT = 16
"""Bytes an aligned ConstFst pads its state and arc arrays to (from the file's start)."""

LOOKAHEAD_TYPE = "olabel_lookahead"
CONST_TYPE = "const"
CONST_VERSION = 2
STANDARD_ARCS = "standard"
"""Tropical-weight arcs: int32 labels, float32 weight, int32 next state."""

HEADER_BYTES_MAX = 4096
"""More than a header (magic, two short type names, counts) ever needs."""

_MAX_NAME = 256

STATE = np.dtype(
    [("final", "<f4"), ("pos", "<u4"), ("narcs", "<u4"), ("niepsilons", "<u4"),
     ("noepsilons", "<u4")]
)
"""One ConstFst state: final weight (inf: not final), first arc, arc counts."""

ARC = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("weight", "<f4"), ("nextstate", "<i4")])
"""One ConstFst arc with tropical weight."""


class FormatError(ValueError):
    """The bytes are not the OpenFst file (or the kind of it) the reader expected."""


@dataclass(frozen=True)
class Header:
    """The header every OpenFst file starts with."""

    fst_type: str
    arc_type: str
    version: int
    flags: int
    properties: int
    """Bits of the properties known to hold (fst/properties.h); 0 claims nothing."""
    start: int
    num_states: int
    num_arcs: int

    @classmethod
    def read(cls, data: bytes | memoryview, at: int = 0) -> tuple[Header, int]:
        """The header at ``at`` and the offset just after it (where symbol tables start)."""
        try:
            (magic,) = struct.unpack_from("<i", data, at)
            if magic != FST_MAGIC:
                raise FormatError("not an OpenFst file")
            at += 4
            names = []
            for _ in range(2):  # fst type, arc type
                (length,) = struct.unpack_from("<i", data, at)
                if not 0 <= length < _MAX_NAME:
                    raise FormatError("bad type name in an OpenFst header")
                names.append(bytes(data[at + 4 : at + 4 + length]).decode("ascii"))
                at += 4 + length
            fields = struct.unpack_from("<iiQqqq", data, at)
        except (struct.error, UnicodeDecodeError) as err:
            raise FormatError(f"truncated or garbled OpenFst header: {err}") from err
        return cls(names[0], names[1], *fields), at + struct.calcsize("<iiQqqq")

    def pack(self) -> bytes:
        """The header's bytes."""

        def name(text: str) -> bytes:
            raw = text.encode("ascii")
            return struct.pack("<i", len(raw)) + raw

        return (
            struct.pack("<i", FST_MAGIC)
            + name(self.fst_type)
            + name(self.arc_type)
            + struct.pack(
                "<iiQqqq", self.version, self.flags, self.properties, self.start,
                self.num_states, self.num_arcs,
            )
        )


@dataclass
class LookaheadFst:
    """An ``olabel_lookahead`` FST: a ConstFst whose output labels were renumbered so
    that, from each state, the labels its first non-epsilon output can be form a few
    intervals, stored beside it for composition to look ahead with.

    The intervals are read only when asked for (a Python loop over every state: seconds
    for a model's graph, which trimming does not need them from).
    """

    header: Header
    """The outer header (type olabel_lookahead)."""
    const_header: Header
    """The header of the ConstFst inside."""
    states: np.ndarray
    """STATE records."""
    arcs: np.ndarray
    """ARC records, each state's arcs together, sorted by output label."""
    final_label: int
    """The label that stands for "a final state is reachable" in the intervals."""
    reachable: list[np.ndarray]
    """Per state: an (n, 2) int32 array of label intervals [begin, end); empty if not read."""


def read_lookahead(data: bytes | memoryview, with_intervals: bool = False) -> LookaheadFst:
    """The lookahead FST in ``data`` (FormatError if it is any other kind of FST), with
    its reachable intervals if ``with_intervals``."""
    header, at = Header.read(data)
    if header.fst_type != LOOKAHEAD_TYPE or header.arc_type != STANDARD_ARCS:
        raise FormatError(f"a {header.fst_type}/{header.arc_type} FST, not {LOOKAHEAD_TYPE}")
    if header.flags & (HAS_INPUT_SYMBOLS | HAS_OUTPUT_SYMBOLS):
        raise FormatError("a lookahead FST with symbol tables")
    try:
        (magic,) = struct.unpack_from("<i", data, at)
    except struct.error as err:
        raise FormatError("truncated lookahead FST") from err
    if magic != ADD_ON_MAGIC:
        raise FormatError("no add-on data after the lookahead FST's header")
    inner, at = Header.read(data, at + 4)
    if (inner.fst_type, inner.arc_type, inner.version) != (CONST_TYPE, STANDARD_ARCS,
                                                           CONST_VERSION):
        raise FormatError(
            f"a lookahead FST over {inner.fst_type}/{inner.arc_type} version {inner.version}"
        )
    if inner.flags & (HAS_INPUT_SYMBOLS | HAS_OUTPUT_SYMBOLS):
        raise FormatError("a lookahead FST whose ConstFst has symbol tables")
    aligned = bool(inner.flags & IS_ALIGNED)
    states, at = _array(data, at, STATE, inner.num_states, aligned)
    arcs, at = _array(data, at, ARC, inner.num_arcs, aligned)
    # Add-ons: [have any][have input-side data][have output-side data][output-side data]
    flags = bytes(data[at : at + 5])
    if len(flags) < 5 or flags[:3] != b"\x01\x00\x01":
        raise FormatError("a lookahead FST without output-label reachability data")
    reach_input, keep_relabel_data = flags[3], flags[4]
    if reach_input or keep_relabel_data:
        raise FormatError("lookahead data of a kind coach does not read")
    try:
        final_label, count = struct.unpack_from("<iq", data, at + 5)
        at += 5 + 12
        reachable = []
        if with_intervals:
            if count != inner.num_states:
                raise FormatError("lookahead data for a different number of states")
            for _ in range(count):
                (size,) = struct.unpack_from("<q", data, at)
                pairs, at = _array(data, at + 8, np.dtype("<i4"), 2 * size, False)
                reachable.append(pairs.reshape(size, 2))
                at += 4  # the interval set's element count
            if at != len(data):
                raise FormatError("bytes left after the lookahead data")
    except struct.error as err:
        raise FormatError(f"truncated lookahead FST: {err}") from err
    return LookaheadFst(header, inner, states, arcs, final_label, reachable)


def _array(
    data: bytes | memoryview, at: int, dtype: np.dtype, count: int, aligned: bool
) -> tuple[np.ndarray, int]:
    if aligned:
        at += -at % ALIGNMENT
    size = dtype.itemsize * count
    if count < 0 or at + size > len(data):
        raise FormatError("truncated ConstFst")
    return np.frombuffer(data, dtype, count, at), at + size


def write_lookahead(fst: LookaheadFst) -> bytes:
    """The file of ``fst``: its ConstFst unaligned, with its reachable intervals."""
    if len(fst.reachable) != len(fst.states):
        raise ValueError("one interval set per state is needed")
    inner = replace(
        fst.const_header, flags=0, num_states=len(fst.states), num_arcs=len(fst.arcs)
    )
    outer = replace(fst.header, flags=0, properties=inner.properties)
    parts = [
        outer.pack(),
        struct.pack("<i", ADD_ON_MAGIC),
        inner.pack(),
        np.ascontiguousarray(fst.states, STATE).tobytes(),
        np.ascontiguousarray(fst.arcs, ARC).tobytes(),
        b"\x01\x00\x01\x00\x00",
        struct.pack("<iq", fst.final_label, len(fst.reachable)),
    ]
    for intervals in fst.reachable:
        count = int(np.sum(intervals[:, 1] - intervals[:, 0])) if len(intervals) else 0
        parts.append(struct.pack("<q", len(intervals)))
        parts.append(np.ascontiguousarray(intervals, "<i4").tobytes())
        parts.append(struct.pack("<i", count))
    return b"".join(parts)
