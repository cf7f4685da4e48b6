"""The on-disk phrase cache: reuse, keys, corruption and concurrent use (real espeak-ng)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from speech_support import NoSynthesisBackend, needs_espeak, profile

from coach.paths import cache_dir
from coach.phrase_cache import CACHE_FORMAT_VERSION, PhraseCache, phrase_key
from coach.speech import Pyttsx3Backend, Synthesizer

pytestmark = [pytest.mark.speech, needs_espeak]

TEXT = "Slide your foot back."


@pytest.fixture(scope="module")
def backend() -> Iterator[Pyttsx3Backend]:
    real = Pyttsx3Backend()
    yield real
    real.close()


def _entries(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.phr"))


def test_second_synthesis_synthesizes_nothing(backend: Pyttsx3Backend) -> None:
    first = Synthesizer(profile(), backend=backend)
    cold = first.synthesize(TEXT)
    assert (first.stats.hits, first.stats.misses) == (0, 1)
    assert first.stats.synth_s > 0
    assert first.cache is not None and first.cache.root == cache_dir() / "phrases"
    assert len(_entries(first.cache.root)) == 1

    # A new synthesizer (as in a second render) whose engine refuses to synthesize.
    refusing = NoSynthesisBackend(backend)
    second = Synthesizer(profile(), backend=refusing)
    warm = second.synthesize(TEXT)
    assert refusing.calls == 0
    assert (second.stats.hits, second.stats.misses, second.stats.synth_s) == (1, 0, 0.0)
    np.testing.assert_array_equal(warm.pcm, cold.pcm)
    assert warm.duration_ms == cold.duration_ms
    # Asking again is answered from memory.
    second.synthesize(TEXT)
    assert second.stats.memory_hits == 1 and second.stats.hits == 1


def test_sentence_pause_is_not_part_of_the_key(backend: Pyttsx3Backend) -> None:
    short = Synthesizer(profile(sentence_pause_ms=100), backend=backend).synthesize(TEXT)
    refusing = NoSynthesisBackend(backend)
    long = Synthesizer(profile(sentence_pause_ms=600), backend=refusing).synthesize(TEXT)
    assert refusing.calls == 0
    assert long.duration_ms - short.duration_ms == pytest.approx(500, abs=1)


@pytest.mark.parametrize(
    "change",
    [
        {"rate_wpm": 140},
        {"volume": 0.5},
        {"system_voices": {"linux": ["gmw/en"]}},
    ],
)
def test_everything_that_changes_the_sound_changes_the_key(
    backend: Pyttsx3Backend, change: dict[str, object]
) -> None:
    base = Synthesizer(profile(), use_cache=False, backend=backend)
    other = Synthesizer(profile(**change), use_cache=False, backend=backend)
    assert base.cache_key(TEXT) != other.cache_key(TEXT)
    assert base.cache_key(TEXT) != base.cache_key(TEXT + "!")
    assert base.cache_key(TEXT) == Synthesizer(profile(), backend=backend).cache_key(TEXT)


def test_key_includes_engine_and_format_version() -> None:
    parts = {"engine": "pyttsx3-2.99/espeak/espeak-ng-1.51", "voice": "gmw/en-us", "text": "x"}
    newer = {**parts, "engine": "pyttsx3-2.99/espeak/espeak-ng-1.52"}
    assert phrase_key(parts) != phrase_key(newer)
    assert phrase_key(parts) == phrase_key(dict(reversed(list(parts.items()))))
    assert CACHE_FORMAT_VERSION >= 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_damaged_entry_is_detected_deleted_and_resynthesized(
    backend: Pyttsx3Backend, damage: str
) -> None:
    synth = Synthesizer(profile(), backend=backend)
    good = synth.synthesize(TEXT)
    assert synth.cache is not None
    (entry,) = _entries(synth.cache.root)
    blob = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        pos = len(blob) - 2000
        entry.write_bytes(blob[:pos] + bytes([blob[pos] ^ 0x40]) + blob[pos + 1 :])
    elif damage == "empty":
        entry.write_bytes(b"")
    else:
        entry.write_bytes(b"\x00" * len(blob))

    # A damaged entry must never come back as a phrase.
    assert synth.cache.get(synth.cache_key(TEXT), TEXT) is None
    assert synth.cache.corrupt_entries == 1
    assert not entry.exists()

    # Damage it again and synthesize through a fresh synthesizer: it re-synthesizes.
    entry.write_bytes(blob[:100])
    again = Synthesizer(profile(), backend=backend)
    phrase = again.synthesize(TEXT)
    assert (again.stats.hits, again.stats.misses) == (0, 1)
    assert abs(phrase.duration_ms - good.duration_ms) < 30
    assert entry.read_bytes() != blob[:100]  # repaired
    assert PhraseCache().get(again.cache_key(TEXT), TEXT) is not None


def test_entry_for_another_text_is_rejected(tmp_path: Path) -> None:
    cache = PhraseCache(tmp_path)
    pcm = np.arange(-500, 500, dtype=np.int16)
    cache.put("ab" * 32, "one", pcm, 22050)
    assert cache.get("ab" * 32, "two") is None  # a (hypothetical) key collision
    cache.put("ab" * 32, "one", pcm, 22050)
    stored = cache.get("ab" * 32, "one")
    assert stored is not None
    np.testing.assert_array_equal(stored[0], pcm)
    assert stored[1] == 22050


def test_unwritable_cache_still_speaks(
    backend: Pyttsx3Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    cache = PhraseCache(blocker / "phrases")
    synth = Synthesizer(profile(), cache, backend=backend)
    assert synth.synthesize(TEXT).duration_ms > 500
    assert synth.synthesize("Rest now.").duration_ms > 300
    assert synth.stats.misses == 2 and cache.write_failures == 2
    assert caplog.text.count("cannot write") == 1  # said once, not per phrase


def test_concurrent_writers_in_threads(tmp_path: Path) -> None:
    cache = PhraseCache(tmp_path)
    pcm = (np.sin(np.arange(20000) / 5) * 9000).astype(np.int16)
    key = phrase_key({"text": "same"})
    errors: list[BaseException] = []

    def write_and_read() -> None:
        try:
            for _ in range(20):
                cache.put(key, "same", pcm, 22050)
                got = cache.get(key, "same")
                assert got is not None  # never a half-written entry
                np.testing.assert_array_equal(got[0], pcm)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=write_and_read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.corrupt_entries == 0
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [
        f"{key}.phr"
    ]  # no temp files left


def _synthesize_in_process(
    cache_root: str, text: str, barrier: threading.Barrier, out: multiprocessing.Queue[object]
) -> None:
    try:
        synth = Synthesizer(profile(), PhraseCache(Path(cache_root)))
        barrier.wait(30)
        phrase = synth.synthesize(text)
        out.put(("ok", phrase.duration_ms, synth.stats.misses + synth.stats.hits))
        synth.close()
    except BaseException as err:
        out.put(("error", repr(err), 0))


def test_two_processes_synthesizing_the_same_phrase_both_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out: multiprocessing.Queue[object] = ctx.Queue()
    procs = [
        ctx.Process(target=_synthesize_in_process, args=(str(tmp_path), TEXT, barrier, out))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert [r[0] for r in results] == ["ok", "ok"], results
    cache = PhraseCache(tmp_path)
    (entry,) = _entries(tmp_path)
    key = entry.stem
    stored = cache.get(key, TEXT)
    assert stored is not None and cache.corrupt_entries == 0
    assert not list(tmp_path.rglob(".tmp-*"))


def test_memory_is_bounded_and_evicted_phrases_come_from_disk(
    backend: Pyttsx3Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import coach.speech

    synth = Synthesizer(profile(), backend=backend)
    one = synth.synthesize("One.")
    monkeypatch.setattr(coach.speech, "MEMO_BYTES", one.pcm.nbytes + 1)
    synth.synthesize("Two.")  # pushes "One." out of memory
    assert synth._memo.nbytes <= one.pcm.nbytes * 3
    again = synth.synthesize("One.")
    assert (synth.stats.misses, synth.stats.hits, synth.stats.memory_hits) == (2, 1, 0)
    np.testing.assert_array_equal(again.pcm, one.pcm)
