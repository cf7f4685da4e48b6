"""A Vosk model's lookahead graph trimmed to the words of one grammar.

A Vosk model that takes run-time grammars decodes with ``graph/HCLr.fst`` (its acoustic
states, phone contexts and lexicon in one FST, H∘C∘L) composed on the fly with a small
language model built from the grammar. The small Korean model's HCLr spells all of its
503,352 words: 2,070,278 states and 5,825,966 arcs, 181 MB on disk, and about 260 MB once
loaded (the per-state lookahead data costs more in memory than in the file). A grammar of
coach's commands reaches 1,393 of those states.

:func:`trim_lookahead` keeps exactly the part of the graph a grammar can reach: the arcs
whose output is no word or a kept word, then only the states on a path from the start to
a final state along those arcs. Composition with the grammar never leaves that part (any
other path outputs a word the grammar does not have, or cannot end), so decoding gives
the same words at the same times; the lookahead data are worked out anew for the states
kept. Scores may differ in the last bits of a float32 (2 units in the last place were
seen): the lookahead sums the same weights over other label intervals. Replayed
recordings of 15 live sessions gave the same events, times and confidences (to 3
places), and a loaded model took 73 MB instead of 332.

Run as ``python -m coach.listen.graph_trim SOURCE TARGET LABEL...`` (coach/listen/vosk_view.py
does, so that reading the large graph neither holds the interpreter lock of a session
that is already talking nor adds to its memory): exit status 0 when TARGET was written,
3 when SOURCE is not a graph this module can trim.
"""

from __future__ import annotations

import mmap
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from coach.listen.openfst import FormatError, LookaheadFst, read_lookahead, write_lookahead

EXIT_NOT_TRIMMABLE = 3

_EXPANDED = 0x1
_ACCESSIBLE = 0x10000000000
_COACCESSIBLE = 0x40000000000
_KEPT_BY_A_PART = (
    _EXPANDED
    | 0x10000  # acceptor
    | 0x40000  # input deterministic
    | 0x100000  # output deterministic
    | 0x800000  # no epsilons
    | 0x2000000  # no input epsilons
    | 0x8000000  # no output epsilons
    | 0x10000000  # input labels sorted
    | 0x40000000  # output labels sorted
    | 0x200000000  # unweighted
    | 0x800000000  # acyclic
    | 0x2000000000  # initial acyclic
    | 0x4000000000  # topologically sorted (states keep their order)
    | 0x800000000000  # unweighted cycles
)
"""Properties (fst/properties.h) that still hold for any part of an FST whose states keep
their order; the others are left unknown, for OpenFst to work out if it needs them."""


@dataclass(frozen=True)
class Trimmed:
    """What a trim kept."""

    states: int
    arcs: int
    source_states: int
    source_arcs: int


def trim_lookahead(source: Path, labels: Collection[int], target: Path) -> Trimmed:
    """Write to ``target`` the part of the lookahead graph ``source`` that outputs only
    ``labels`` (word ids of the model's word table). FormatError if ``source`` is not an
    ``olabel_lookahead`` graph over a ConstFst, or if no path from its start to an end
    outputs only those labels."""
    # Mapped, not read: the file's pages stay in the page cache, not in this process's heap.
    # The mapping is not closed by hand: the arrays read from it view it until they go.
    with source.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    graph = read_lookahead(memoryview(mapped))
    part = _trimmed(graph, np.unique(np.asarray(sorted(labels), np.int32)))
    target.write_bytes(write_lookahead(part))
    return Trimmed(len(part.states), len(part.arcs), len(graph.states), len(graph.arcs))


def _trimmed(graph: LookaheadFst, labels: np.ndarray) -> LookaheadFst:
    """The part of ``graph`` on paths from its start to an end that output only
    ``labels`` (sorted), with its own lookahead intervals; new arrays throughout."""
    states, arcs = graph.states, graph.arcs
    count = len(states)
    start = graph.const_header.start
    if not 0 <= start < count:
        raise FormatError("the lookahead graph has no start state")
    narcs = states["narcs"].astype(np.int64)
    first = states["pos"].astype(np.int64)
    if int(narcs.sum()) != len(arcs) or not np.array_equal(first, np.cumsum(narcs) - narcs):
        raise FormatError("the lookahead graph's arcs are not stored state by state")
    olabel = arcs["olabel"]
    nextstate = arcs["nextstate"]
    if len(arcs) and not (int(nextstate.min()) >= 0 and int(nextstate.max()) < count):
        raise FormatError("an arc of the lookahead graph leads to no state")
    source = np.repeat(np.arange(count, dtype=np.int32), narcs)
    allowed = (olabel == 0) | np.isin(olabel, labels)
    ends = np.flatnonzero(np.isfinite(states["final"]))
    ahead = _reached(count, source[allowed], nextstate[allowed], [start])
    behind = _reached(count, nextstate[allowed], source[allowed], ends)
    kept = ahead & behind
    if not kept[start] or not np.isin(olabel[allowed & kept[source]], labels).any():
        raise FormatError("no path of the lookahead graph outputs only the words kept")
    kept_arcs = allowed & kept[source] & kept[nextstate]
    renumbered = np.cumsum(kept) - 1
    new_arcs = arcs[kept_arcs].copy()
    new_arcs["nextstate"] = renumbered[new_arcs["nextstate"]]
    owner = renumbered[source[kept_arcs]]
    size = int(kept.sum())
    new_states = np.zeros(size, states.dtype)
    new_states["final"] = states["final"][kept]
    counts = np.bincount(owner, minlength=size)
    new_states["narcs"] = counts
    new_states["pos"] = np.cumsum(counts) - counts
    new_states["niepsilons"] = np.bincount(owner, new_arcs["ilabel"] == 0, size)
    new_states["noepsilons"] = np.bincount(owner, new_arcs["olabel"] == 0, size)
    reachable = _first_outputs(new_states, new_arcs, owner, graph.final_label)
    properties = graph.const_header.properties & _KEPT_BY_A_PART | _ACCESSIBLE | _COACCESSIBLE
    header = replace(graph.const_header, start=int(renumbered[start]), properties=properties)
    return LookaheadFst(graph.header, header, new_states, new_arcs, graph.final_label, reachable)


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0, 1, .. counts[0]-1, 0, 1, .. counts[1]-1, ..."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    ranks: np.ndarray = np.arange(int(counts.sum())) - starts
    return ranks


def _reached(
    count: int, tails: np.ndarray, heads: np.ndarray, roots: Sequence[int] | np.ndarray
) -> np.ndarray:
    """Which of ``count`` states a walk from ``roots`` along arcs tail -> head reaches."""
    order = np.argsort(tails, kind="stable")
    heads = heads[order]
    degree = np.bincount(tails, minlength=count)
    offset = np.cumsum(degree) - degree
    seen = np.zeros(count, bool)
    frontier = np.unique(np.asarray(roots, np.int64))
    seen[frontier] = True
    while frontier.size:
        out = degree[frontier]
        arcs = np.repeat(offset[frontier], out) + _ranks(out)
        found = heads[arcs]
        frontier = found[~seen[found]]  # may repeat a state: cheaper than np.unique
        seen[frontier] = True
    return seen


def _first_outputs(
    states: np.ndarray, arcs: np.ndarray, owner: np.ndarray, final_label: int
) -> list[np.ndarray]:
    """Per state, the intervals of the labels its first non-epsilon output can be (and
    ``final_label`` when an end is reachable without output), as OpenFst's LabelReachable
    computes them: here by propagating a bit set per state along output-epsilon arcs."""
    size = len(states)
    words = np.unique(arcs["olabel"][arcs["olabel"] != 0])
    labels = np.append(words, np.int32(final_label))
    order = np.argsort(labels)
    labels = labels[order]
    bit_of_final = int(np.flatnonzero(labels == final_label)[0])
    reach = np.zeros((size, len(labels)), bool)
    output = arcs["olabel"] != 0
    reach[owner[output], np.searchsorted(labels, arcs["olabel"][output])] = True
    reach[np.isfinite(states["final"]), bit_of_final] = True
    silent_from, silent_to = owner[~output], arcs["nextstate"][~output]
    while True:
        grown = reach.copy()
        np.logical_or.at(grown, silent_from, reach[silent_to])
        if np.array_equal(grown, reach):
            break
        reach = grown
    out = []
    for row in reach:
        members = labels[row]
        if not members.size:
            out.append(np.zeros((0, 2), np.int32))
            continue
        breaks = np.flatnonzero(np.diff(members) != 1) + 1
        begins = members[np.concatenate(([0], breaks))]
        ends = members[np.concatenate((breaks - 1, [members.size - 1]))] + 1
        out.append(np.stack([begins, ends], axis=1).astype(np.int32))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m coach.listen.graph_trim SOURCE TARGET LABEL...``"""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3:
        print("usage: python -m coach.listen.graph_trim SOURCE TARGET LABEL...", file=sys.stderr)
        return 2
    try:
        trimmed = trim_lookahead(Path(args[0]), [int(a) for a in args[2:]], Path(args[1]))
    except FormatError as err:
        print(f"{args[0]}: {err}", file=sys.stderr)
        return EXIT_NOT_TRIMMABLE
    print(f"{trimmed.states} of {trimmed.source_states} states, "
          f"{trimmed.arcs} of {trimmed.source_arcs} arcs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
