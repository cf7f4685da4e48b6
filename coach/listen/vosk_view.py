"""The folder coach hands to Vosk: the installed model seen through a view of links.

Every file of the model is linked, not copied, except three, which the view replaces:

- ``graph/Gr.fst``, when the model has one (a model whose graph a grammar can restrict at
  run time). Recognizers built with a grammar never use the model's language model: Vosk
  0.3.45 reads Gr.fst only for the word table that maps the grammar's words to the ids of
  ``HCLr.fst``. The small Korean model's table lists 503,352 words, twice (input and
  output); loaded, the tables took 165 MB of the model's 497 MB. The view's Gr.fst is a
  one-state FST whose output table holds only the grammar's words, with their ids.
- ``graph/HCLr.fst``, the graph a grammar is composed with, trimmed to the grammar's words
  (coach/listen/graph_trim.py, in a process of its own): 361 kB instead of 181 MB, and the
  loaded model 73 MB instead of 332, with the same words heard at the same times (scores
  up to float32 rounding). A graph of a kind it cannot trim is linked as it is.
- ``conf/mfcc.conf``, with ``--dither=0`` added. Kaldi dithers each frame with noise
  drawn from the C library's process-wide ``rand()``, so a recognizer's results depend on
  every other recognizer that ran before it in the process, or beside it on another
  thread: the same audio decoded twice gave different confidences, and sometimes
  different words. Without it, a decode repeats exactly; the engine dithers the audio
  itself, with noise from a generator of its own (``DITHER_RMS`` in vosk_engine.py).

Views live in the user cache, one folder per model and word set (under 1 MB). A view is
built in a temporary folder and renamed into place, so a reader never sees half of one,
and two processes building the same view both end up with it. Views whose model has gone
(removed or moved) are pruned when a new view is built and when a model is removed
(``prune_views``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import coach
from coach.listen.graph_trim import EXIT_NOT_TRIMMABLE
from coach.listen.lexicon import Lexicon
from coach.listen.openfst import HAS_OUTPUT_SYMBOLS, SYMBOL_TABLE_MAGIC, Header
from coach.paths import cache_dir

_log = logging.getLogger(__name__)

VIEW_VERSION = 2
"""Part of each view's name: a change to what views hold gives new names."""

SPECIAL_WORDS = ("<eps>", "!SIL", "<UNK>", "<unk>", "[unk]", "<s>", "</s>", "#0")
"""Symbols kept in a trimmed table whether or not the grammar names them."""

DITHER_OPTION = "--dither=0"

LEFTOVER_AGE_S = 3600
"""A builder's temporary folder older than this was left by a process that died."""

TRIM_TIMEOUT_S = 300
"""Longest wait for the graph to be trimmed (about 1.5 s on a 2-core x86 machine, with 280
MB of memory besides the mapped graph; a first start on a small board takes longer, once)."""

_VECTOR_FST_VERSION = 2


def views_root() -> Path:
    """Where views live: the user cache's ``vosk-views`` folder."""
    return cache_dir() / "vosk-views"


class ViewError(OSError):
    """The view could not be built (the caller loads the model's own folder instead)."""


def model_view(model: Path, words: Iterable[str], lexicon: Lexicon | None, root: Path) -> Path:
    """A view of ``model`` under ``root`` for recognizers whose grammars use only ``words``.

    ``lexicon`` is the model's word table (VoskModel.words): the ids of the kept words come
    from it. With no table read from Gr.fst, the view keeps the model's Gr.fst. Raises
    ViewError when the view cannot be written (a read-only cache, a full disk, a file
    system without symbolic links).
    """
    model = model.resolve()
    graph = model / "graph" / "Gr.fst"
    hcl = model / "graph" / "HCLr.fst"
    trim = graph.is_file() and lexicon is not None and lexicon.kind == "fst"
    kept = sorted(set(words) | set(SPECIAL_WORDS)) if trim else []
    mfcc = model / "conf" / "mfcc.conf"
    try:
        key = _view_key(model, [graph, hcl], mfcc, kept)
        view = root / f"{model.name}-{key}"
        if _complete(view):
            return view
        root.mkdir(parents=True, exist_ok=True)
        mine = f"{os.getpid()}.{threading.get_ident()}"
        building = root / f".{view.name}.{mine}.tmp"
        shutil.rmtree(building, ignore_errors=True)
        replaced: dict[str, bytes] = {"conf/mfcc.conf": _without_dither(mfcc)}
        if trim:
            assert lexicon is not None
            ids = lexicon.keys(kept)
            replaced["graph/Gr.fst"] = word_table_fst(ids)
            if hcl.is_file():
                trimmed = _trimmed_graph(hcl, ids.values(), root / f".{view.name}.{mine}.hcl")
                if trimmed is not None:
                    replaced["graph/HCLr.fst"] = trimmed
        _link_tree(model, building, replaced)
        if view.exists() and not _complete(view):  # a link broke since: set it aside
            stale = root / f".{view.name}.{mine}.stale"
            with contextlib.suppress(FileNotFoundError):  # another process did it first
                view.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            building.rename(view)
        except OSError:  # another process finished the same view first
            shutil.rmtree(building, ignore_errors=True)
            if not _complete(view):
                raise
        prune_views(root)
        return view
    except OSError as err:
        raise ViewError(f"could not write a view of {model} under {root}: {err}") from err


def prune_views(root: Path) -> list[Path]:
    """Delete the views under ``root`` that lead to a model no longer there (a link broke:
    the model was removed or moved), and temporary folders a builder left over
    ``LEFTOVER_AGE_S`` ago; the paths deleted. Best effort: what cannot be deleted
    now stays for the next time.
    """
    now = time.time()
    pruned: list[Path] = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return pruned
    for entry in entries:
        try:
            if entry.name.startswith("."):
                stale = now - entry.lstat().st_mtime > LEFTOVER_AGE_S
            else:
                stale = entry.is_dir() and not _complete(entry)
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                pruned.append(entry)
    return pruned


def _trimmed_graph(hcl: Path, ids: Iterable[int], scratch: Path) -> bytes | None:
    """``hcl`` trimmed to the words ``ids`` (coach/listen/graph_trim.py, run as a process of
    its own: reading the 181 MB graph would hold this process's interpreter lock, which a
    session's speaker needs every 20 ms, and leave its memory behind); None when the graph
    is of a kind that module cannot trim. ViewError when trimming fails otherwise."""
    package_root = str(Path(coach.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    labels = [str(i) for i in sorted(set(ids)) if i > 0]
    command = [sys.executable, "-m", "coach.listen.graph_trim", str(hcl), str(scratch), *labels]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=TRIM_TIMEOUT_S,
            check=False,
        )
        if done.returncode == EXIT_NOT_TRIMMABLE:
            _log.info("%s is linked as it is: %s", hcl, done.stderr.strip())
            return None
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            raise ViewError(f"could not trim {hcl}: {reason}")
        return scratch.read_bytes()
    except subprocess.TimeoutExpired as err:
        raise ViewError(f"trimming {hcl} took over {TRIM_TIMEOUT_S} s") from err
    finally:
        with contextlib.suppress(OSError):
            scratch.unlink()


def word_table_fst(symbols: dict[str, int]) -> bytes:
    """An OpenFst file (VectorFst, tropical weights) of one final state and no arcs, whose
    output symbol table maps each of ``symbols`` to its id.

    Its properties are written as 0 ("none known"), which is always true; OpenFst works
    out any it needs.
    """

    def string(data: bytes) -> bytes:
        return struct.pack("<i", len(data)) + data

    table = [struct.pack("<i", SYMBOL_TABLE_MAGIC), string(b"coach-view")]
    table.append(struct.pack("<qq", max(symbols.values(), default=0) + 1, len(symbols)))
    for word, key in sorted(symbols.items(), key=lambda item: item[1]):
        table.append(string(word.encode("utf-8")) + struct.pack("<q", key))
    header = Header("vector", "standard", _VECTOR_FST_VERSION, HAS_OUTPUT_SYMBOLS, 0, 0, 1, 0)
    state = struct.pack("<fq", 0.0, 0)  # final weight One() (0.0), no arcs
    return header.pack() + b"".join(table) + state


def _view_key(model: Path, graphs: list[Path], mfcc: Path, kept: list[str]) -> str:
    """What a view depends on: the model's place, its graph files and mfcc.conf, the words."""
    stats = [graph.stat() if graph.is_file() else None for graph in graphs]
    described = {
        "version": VIEW_VERSION,
        "model": str(model),
        "graphs": [None if st is None else [st.st_size, st.st_mtime_ns] for st in stats],
        "mfcc": hashlib.sha256(mfcc.read_bytes()).hexdigest() if mfcc.is_file() else None,
        "words": kept,
    }
    text = json.dumps(described, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _without_dither(mfcc: Path) -> bytes:
    """The model's feature options with dithering off (a later option wins in Kaldi)."""
    options = mfcc.read_bytes() if mfcc.is_file() else b""
    if options and not options.endswith(b"\n"):
        options += b"\n"
    return options + DITHER_OPTION.encode("ascii") + b"\n"


def _link_tree(model: Path, into: Path, replaced: dict[str, bytes]) -> None:
    """``into`` mirrors ``model``: a link to each entry, except the files in ``replaced``
    (relative paths: their new contents), whose folders are made and linked file by file."""
    folders = {name.split("/")[0] for name in replaced}
    into.mkdir(parents=True)
    for entry in sorted(model.iterdir()):
        if entry.name not in folders:
            (into / entry.name).symlink_to(entry)
            continue
        (into / entry.name).mkdir()
        for inner in sorted(entry.iterdir()):
            if f"{entry.name}/{inner.name}" not in replaced:
                (into / entry.name / inner.name).symlink_to(inner)
    for name, content in replaced.items():
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_bytes(content)


def _complete(view: Path) -> bool:
    """Whether ``view`` was built and every link in it still leads to something."""
    if not (view / "conf" / "mfcc.conf").is_file():
        return False
    for entry in view.iterdir():
        inside = [entry] if entry.is_symlink() else list(entry.iterdir())
        if not all(path.exists() for path in inside):
            return False
    return True
