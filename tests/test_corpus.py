"""The listening corpus builder (scripts/make_corpus.py): labels, offsets and SNR are right."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import corpus_lib as cl  # noqa: E402
import make_corpus  # noqa: E402

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def _silence(n: int) -> cl.Audio:
    return np.zeros(n, np.float32)


@needs_espeak
@pytest.mark.speech
def test_stream_labels_are_the_active_span_at_the_offset(tmp_path: Path) -> None:
    pcm = cl.normalize_active(cl.espeak_cached("stop", cl.VoiceVariant("en-us", 175, 50),
                                               tmp_path))
    start_ms, end_ms = cl.active_span_ms(pcm)
    assert 0 <= start_ms < end_ms <= len(pcm) * 1000 // cl.SAMPLE_RATE_HZ
    utterances = [cl.Utterance(pcm, {"command": "STOP"}), cl.Utterance(pcm, {"command": None})]
    stream, placed = cl.build_stream(utterances, [(0, 1000), (1, 4000)], _silence, tail_ms=500)

    assert [p.offset_ms for p in placed] == [1000, 4000]
    for p in placed:
        assert (p.onset_ms, p.word_end_ms) == (p.offset_ms + start_ms, p.offset_ms + end_ms)
        # Silence right before the onset, speech right after it, silence after the end.
        on = p.onset_ms * cl.SAMPLE_RATE_HZ // 1000
        end = p.word_end_ms * cl.SAMPLE_RATE_HZ // 1000
        assert np.all(stream[on - 160 : on] == 0.0) or start_ms > 0
        assert np.abs(stream[on : on + 160]).max() > 0.0
        assert cl.power_db(float(np.mean(stream[on:end] ** 2))) > cl.SPEECH_LEVEL_DBFS - 6
    last = placed[-1].offset_ms + len(pcm) * 1000 // cl.SAMPLE_RATE_HZ
    assert len(stream) == (last + 500) * cl.SAMPLE_RATE_HZ // 1000
    assert placed[0].row("s.wav")["command"] == "STOP"


@needs_espeak
@pytest.mark.speech
@pytest.mark.parametrize("snr_db", [0.0, 10.0])
@pytest.mark.parametrize("kind", ["white", "pink"])
def test_noise_is_scaled_to_the_snr_over_the_active_speech(
    tmp_path: Path, snr_db: float, kind: str
) -> None:
    speech = cl.normalize_active(
        cl.espeak_cached("that hurts", cl.VoiceVariant("en-gb", 175, 50), tmp_path)
    )
    assert cl.power_db(cl.active_power(speech)) == pytest.approx(cl.SPEECH_LEVEL_DBFS, abs=0.01)
    rng = np.random.default_rng(3)
    raw = cl.white_noise(80_000, rng) if kind == "white" else cl.pink_noise(80_000, rng)
    noise = cl.noise_for_snr(raw, snr_db)
    measured = cl.power_db(cl.active_power(speech)) - cl.power_db(float(np.mean(noise**2)))
    assert measured == pytest.approx(snr_db, abs=0.01)


def test_active_span_ignores_a_recorded_noise_floor() -> None:
    rng = np.random.default_rng(1)
    floor = cl.scale_to_power(cl.white_noise(16_000, rng), -50.0)
    tone = np.sin(2 * np.pi * 300 * np.arange(4_000) / cl.SAMPLE_RATE_HZ).astype(np.float32)
    clip = floor.copy()
    clip[6_000:10_000] += 0.3 * tone
    # 6000..10000 samples = 375..625 ms: the half-filled frames at both ends count too.
    assert cl.active_span_ms(clip) == (370, 630)


@needs_espeak
@pytest.mark.speech
def test_tiny_corpus_manifest_matches_the_streams(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    manifest = make_corpus.build_corpus(
        out, "en", seed=5, conditions=[None, 0.0], variants=1, urgent_variants=2,
        instructions=2, negative_variants=1, stream_s=15, gap_ms=(1500, 2000), log=False,
        limit=3,
    )
    rows = cl.read_jsonl(manifest)
    commands = {r["command"] for r in rows if r["kind"] == "cmd"}
    assert commands == {"STOP", "PAIN", "NEXT"}
    assert {r["condition"] for r in rows} == {"clean", "snr0"}
    negatives = [r for r in rows if r["kind"] == "neg"]
    assert negatives and all(r["command"] is None for r in negatives)
    assert {r["category"] for r in negatives} == {"instruction", "counting", "everyday",
                                                  "soundalike"}

    clean_rows = [r for r in rows if r["condition"] == "clean"]
    noisy_rows = [r for r in rows if r["condition"] == "snr0"]
    # Same utterances at the same offsets in every condition.
    assert [(r["phrase"], r["onset_ms"]) for r in clean_rows] == \
        [(r["phrase"], r["onset_ms"]) for r in noisy_rows]

    streams: dict[str, cl.Audio] = {}
    for row in rows:
        assert row["offset_ms"] <= row["onset_ms"] < row["word_end_ms"]
        variant = cl.VoiceVariant(row["voice"], row["rate"], row["pitch"])
        clip = cl.normalize_active(cl.espeak_cached(row["phrase"], variant, out / "clips"))
        a, b = cl.active_span_ms(clip)
        assert (row["onset_ms"], row["word_end_ms"]) == (row["offset_ms"] + a,
                                                         row["offset_ms"] + b)
        if row["file"] not in streams:
            streams[row["file"]] = cl.read_wav(out / row["file"])[0]
        stream = streams[row["file"]]
        start = row["offset_ms"] * cl.SAMPLE_RATE_HZ // 1000
        residual = stream[start : start + len(clip)] - clip
        # What is left after removing the clip at its labelled offset is the background:
        # room noise (clean) or noise 0 dB below the speech's active level.
        left_db = cl.power_db(float(np.mean(residual.astype(np.float64) ** 2)))
        if row["snr_db"] is None:
            assert left_db < cl.ROOM_NOISE_DBFS + 3
        else:
            expected = cl.SPEECH_LEVEL_DBFS - row["snr_db"]
            assert left_db == pytest.approx(expected, abs=1.5)
    # The labelled offset is the only one that cancels the clip: one sample off does not.
    row = clean_rows[0]
    clip = cl.normalize_active(cl.espeak_cached(
        row["phrase"], cl.VoiceVariant(row["voice"], row["rate"], row["pitch"]), out / "clips"))
    start = row["offset_ms"] * cl.SAMPLE_RATE_HZ // 1000 + 1
    shifted = streams[row["file"]][start : start + len(clip)] - clip
    assert cl.power_db(float(np.mean(shifted**2))) > cl.ROOM_NOISE_DBFS + 10


def test_events_are_credited_to_the_utterance_they_follow() -> None:
    labels = [
        {"command": "STOP", "onset_ms": 1000, "word_end_ms": 1400},
        {"command": None, "onset_ms": 5000, "word_end_ms": 6000},
        {"command": "PAIN", "onset_ms": 9000, "word_end_ms": 9300},
    ]
    events = [
        cl.HeardEvent("STOP", "stop", 0.9, 1400, 1650),
        cl.HeardEvent("NEXT", "next", 0.9, 5900, 6100),
        cl.HeardEvent("PAIN", "pain", 0.9, 9300, 9450),
        cl.HeardEvent("HELP", "help", 0.9, 500, 600),  # before any utterance: stray
        cl.HeardEvent("YES", "yes", 0.9, 3000, 4500),  # 3.1 s after "stop" ended: stray
    ]
    outcomes, stray = cl.assign_events(labels, events)
    assert [o.detected for o in outcomes] == [True, False, True]
    assert [o.latency_ms for o in outcomes] == [250, None, 150]
    assert [e.command for e in outcomes[1].false_events] == ["NEXT"]
    assert sorted(e.command for e in stray) == ["HELP", "YES"]
